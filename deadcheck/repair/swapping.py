"""Replace ReLU sites with LeakyReLU or PReLU, keeping every other weight.

A swap is two steps, kept apart so the second can be replayed in the user's own
code without a forward pass:

1. :func:`plan_swap` decides, from a recording, which sites change and what
   each becomes (a :class:`SwapPlan`, saved as JSON);
2. :func:`apply_plan` carries the plan out on a model built the same way.

Each site is swapped one of three ways (``PlannedSite.how``):

* ``replace``: the module itself is replaced, wherever the model holds it. This
  covers a module called once, and a module called many times (in a loop, once
  per FPN level) when every one of its calls is swapped and one new module can
  serve them all;
* ``rewrite``: a module called at several sites of which only some are swapped
  (or whose sites need PReLUs of different sizes: ResNet-50's
  ``Bottleneck.relu``), and a functional call in forward code (``F.relu`` in
  GoogLeNet's ``BasicConv2d``), need their caller's forward rewritten: the
  caller is traced with ``torch.fx`` (every child a leaf, so only the caller's
  own code is traced) and each call site gets its own module;
* ``attribute``: a function held in an attribute (``nn.TransformerEncoderLayer``
  keeps ``F.relu`` as ``self.activation``, and its forward does not trace) is
  swapped by putting a module in that attribute;
* ``call``: a functional call in code that does not trace (RAFT's root
  ``F.relu``, data-dependent branches) is swapped at run time: the caller's
  forward is wrapped so that its chosen own calls run a new child module
  instead (:mod:`deadcheck.repair.calls`);
* ``slots``: a module called at several sites that need modules of their own,
  in a caller whose code does not trace, becomes a
  :class:`~deadcheck.repair.calls.PerCall` holding one module per call.

PReLU slopes act on the site's own unit axis (:class:`~deadcheck.recording.layers.AxisPReLU`),
so a transformer FFN gets one slope per feature, not per token. Where no way
works the swap fails, naming each site and why; it never swaps part of what was
asked silently.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
import torch.fx
from torch import nn

from deadcheck.core import jsontext
from deadcheck.core.checks import is_number
from deadcheck.core.errors import InputError, SwapError
from deadcheck.core.kinds import KINDS, kind
from deadcheck.recording.activations import module_kind, parse_call
from deadcheck.recording.feeding import scan
from deadcheck.recording.layers import AxisPReLU
from deadcheck.repair.calls import PerCall, install_swapped_calls
from deadcheck.repair.folder import write_repair
from deadcheck.repair.graph import (
    OwnCodeTracer,
    occurrence_problem,
    replace_everywhere,
    site_nodes,
    trace_problem,
)
from deadcheck.results.report import Report, SiteReport

__all__ = [
    "PLAN_SCHEMA",
    "PlannedSite",
    "SwapError",
    "SwapPlan",
    "apply_plan",
    "plan_swap",
    "save_swap",
    "swap",
]

PLAN_SCHEMA = "deadcheck.swap-plan/1"

#: What a swap turns ReLU into.
SwapTo = Literal["leaky_relu", "prelu"]
_ALIASES: dict[str, SwapTo] = {
    "leaky_relu": "leaky_relu",
    "leakyrelu": "leaky_relu",
    "leaky": "leaky_relu",
    "prelu": "prelu",
}
#: Findings that make a site worth swapping (a swap does not cure NaNs or slopes).


@dataclass(frozen=True)
class PlannedSite:
    """One site and what it becomes."""

    site: str
    kind: str
    module: str
    function: str | None
    caller: str | None
    index: int
    occurrences: int
    units: int
    becomes: str
    #: LeakyReLU's negative_slope, or PReLU's initial slope.
    slope: float
    num_parameters: int = 1
    #: The new LeakyReLU works in place, as the ReLU it replaces did (not ``swap(inplace=)``).
    activation_inplace: bool = False
    #: The site's name after the swap (a rewritten call site gets a module of its own).
    new_site: str = ""
    #: How the site is swapped: "replace", "rewrite", "attribute" or "call" (the module doc).
    how: str = ""
    #: The axis PReLU slopes act on: 1 for channels (N, C, ...), -1 for features (..., F).
    unit_axis: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SwapPlan:
    """Which sites change and into what; JSON schema ``deadcheck.swap-plan/1``."""

    to: SwapTo
    sites: tuple[PlannedSite, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def parameters_added(self) -> int:
        return sum(s.num_parameters for s in self.sites if s.becomes == "PReLU")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "to": self.to,
            "parameters_added": self.parameters_added,
            "sites": [s.to_dict() for s in self.sites],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> SwapPlan:
        """A plan from its JSON form, checked field by field before anything touches a model.

        Every field must have its type and range, every value be one deadcheck
        writes; anything else raises :class:`SwapError` naming the first flaw.
        """
        if not isinstance(data, dict):
            raise SwapError(f"not a swap plan: a JSON {type(data).__name__}, not an object")
        if data.get("schema") != PLAN_SCHEMA:
            schema = str(data.get("schema"))[:40]
            raise SwapError(f"not a swap plan (schema {schema!r}, want {PLAN_SCHEMA})")
        to = data.get("to")
        if to not in ("leaky_relu", "prelu"):
            raise SwapError(f"plan 'to' is {str(to)[:40]!r}: leaky_relu or prelu")
        sites = data.get("sites")
        if not isinstance(sites, list):
            raise SwapError("plan 'sites' is not a list")
        notes = data.get("notes", [])
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise SwapError("plan 'notes' is not a list of strings")
        return cls(
            to=to,
            sites=tuple(_checked_site(site, i, to) for i, site in enumerate(sites)),
            notes=tuple(notes),
        )

    @classmethod
    def load(cls, path: str | Path) -> SwapPlan:
        return cls.from_dict(json.loads(Path(path).read_text()))


#: Each field of a planned site: its types, and whether None is allowed.
_SITE_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "site": ((str,), False),
    "kind": ((str,), False),
    "module": ((str,), False),
    "function": ((str,), True),
    "caller": ((str,), True),
    "index": ((int,), False),
    "occurrences": ((int,), False),
    "units": ((int,), False),
    "becomes": ((str,), False),
    "slope": ((int, float), False),
    "num_parameters": ((int,), False),
    "activation_inplace": ((bool,), False),
    "new_site": ((str,), False),
    "how": ((str,), False),
    "unit_axis": ((int,), False),
}
_REQUIRED = ("site", "kind", "module", "index", "occurrences", "units", "becomes", "slope")
#: nn.Module's own attributes: never a module path a plan may write to.
_MODULE_ATTRIBUTES = frozenset(dir(nn.Module())) | {"__class__", "__dict__"}
_MAX_UNITS = 1 << 31
#: The largest slope magnitude a plan or option may give (float32 holds it exactly enough).
_MAX_SLOPE = 1e4
_HOWS = ("", "replace", "rewrite", "attribute", "call", "slots")


def _path_ok(path: str) -> bool:
    """A dotted module path of plain names ("" is the model itself)."""
    if path == "":
        return True
    return all(
        (part.isidentifier() or part.isdigit())
        and not part.startswith("__")
        and part not in _MODULE_ATTRIBUTES
        for part in path.split(".")
    )


def _checked_site(site: Any, i: int, to: str) -> PlannedSite:
    """One planned site from JSON, with every field of the right type and in range."""
    where = f"plan site {i}"
    if not isinstance(site, dict):
        raise SwapError(f"{where} is not an object")
    unknown = sorted(set(site) - set(_SITE_FIELDS))
    if unknown:
        raise SwapError(f"{where} has unknown field {unknown[0][:40]!r}")
    missing = [name for name in _REQUIRED if name not in site]
    if missing:
        raise SwapError(f"{where} lacks {missing[0]!r}")
    for name, value in site.items():
        types, nullable = _SITE_FIELDS[name]
        if value is None and nullable:
            continue
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise SwapError(f"{where}: {name} is {str(value)[:40]!r}, not a {types[0].__name__}")
    if site["kind"] not in KINDS:
        raise SwapError(f"{where}: kind {site['kind'][:40]!r} is not an activation kind")
    becomes = {"leaky_relu": "LeakyReLU", "prelu": "PReLU"}[to]
    if site["becomes"] != becomes:
        raise SwapError(f"{where}: becomes {site['becomes'][:40]!r}, but the plan swaps to {to}")
    if site.get("how", "") not in _HOWS:
        raise SwapError(
            f"{where}: how {site['how'][:40]!r} is not replace, rewrite, attribute or call"
        )
    if site.get("how") == "call" and site.get("function") is None:
        raise SwapError(f"{where}: how 'call' swaps a function call, and function is null")
    if site.get("how") == "slots" and site.get("function") is not None:
        raise SwapError(f"{where}: how 'slots' swaps a module's calls, and function is set")
    if not 0 <= site["index"] < site["occurrences"] <= _MAX_UNITS:
        raise SwapError(f"{where}: index {site['index']} of {site['occurrences']} occurrences")
    if not 1 <= site["units"] <= _MAX_UNITS:
        raise SwapError(f"{where}: units {site['units']} is out of range")
    parameters = site.get("num_parameters", 1)
    if parameters != 1 and not (becomes == "PReLU" and parameters == site["units"]):
        raise SwapError(f"{where}: num_parameters {parameters} is neither 1 nor its units")
    if not (is_number(site["slope"]) and abs(site["slope"]) <= _MAX_SLOPE):
        raise SwapError(f"{where}: slope {site['slope']:.3g} is not a finite slope in ±1e4")
    if not -8 <= site.get("unit_axis", 1) < 8:
        raise SwapError(f"{where}: unit_axis {site['unit_axis']} is out of range")
    for name in ("module", "caller", "new_site"):
        value = site.get(name)
        if value is not None and not _path_ok(value):
            raise SwapError(f"{where}: {name} {value[:40]!r} is not a module path")
    return PlannedSite(**site)


def _swap_to(to: str) -> SwapTo:
    key = to.lower().replace("-", "_")
    if key not in _ALIASES:
        raise SwapError(f"cannot swap to {to!r}: choose leaky_relu or prelu")
    return _ALIASES[key]


def _report_from(model: nn.Module, example_inputs: Any) -> Report:
    """The sites, from one forward pass: the scan's own, so a failing model is a ModelError."""
    return scan(model, [example_inputs], train=model.training)


def _chosen(report: Report, sites: Any) -> list[SiteReport]:
    layers = report.sites
    if sites is None or (isinstance(sites, str) and sites == "all"):
        return [layer for layer in layers if kind(layer.kind).swappable]
    if isinstance(sites, Report) or (isinstance(sites, str) and sites == "flagged"):
        flagged = set((sites if isinstance(sites, Report) else report).flagged_sites)
        return [layer for layer in layers if layer.name in flagged and kind(layer.kind).swappable]
    names = [sites] if isinstance(sites, str) else list(sites)
    by_name = {layer.name: layer for layer in layers}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SwapError(
            f"no site named {', '.join(unknown)}; sites are: "
            + ", ".join(layer.name for layer in layers)
        )
    return [by_name[n] for n in names]


def _inplace(model: nn.Module, layer: SiteReport) -> bool:
    if layer.function is not None:
        return False
    module = model.get_submodule(layer.module)
    return bool(getattr(module, "inplace", False))


def _prelu_axis(layer: SiteReport) -> int:
    """Where a site's PReLU slopes go: -1 for units on the last axis of rank >= 3, else its axis."""
    ndim = len(layer.shape)
    if ndim >= 3 and layer.unit_axis == ndim - 1:
        return -1
    return layer.unit_axis


def _function_of(value: Any) -> str | None:
    """The family function a stored callable is (``F.relu`` -> "relu"), or None."""
    call = parse_call(value, (None,), {})
    return call.function if call is not None else None


def _held_function(caller: nn.Module, function: str) -> str | None:
    """The one attribute of ``caller`` that holds the family function ``function``, or None."""
    found = [
        name
        for name, value in vars(caller).items()
        if not name.startswith("_") and callable(value) and _function_of(value) == function
    ]
    return found[0] if len(found) == 1 else None


_Traced = dict[tuple[str, str | None], bool]


def _traces_cached(model: nn.Module, site: PlannedSite, cache: _Traced) -> bool:
    """:func:`_traces` once per (module, function): planning asks it in two places."""
    key = (site.module, site.function)
    if key not in cache:
        cache[key] = site.caller is not None and _traces(model, site.caller, site)
    return cache[key]


def _traces(model: nn.Module, caller_path: str, site: PlannedSite) -> bool:
    """Whether the caller's own code traces and shows as many such calls as ran."""
    caller = model.get_submodule(caller_path) if caller_path else model
    try:
        gm = torch.fx.GraphModule(caller, OwnCodeTracer(caller).trace(caller))
    except Exception:
        return False
    prefix = f"{caller_path}." if caller_path else ""
    found = site_nodes(gm, prefix=prefix, caller=caller_path).get((site.module, site.function), [])
    return occurrence_problem(len(found), site.occurrences) is None


def _shareable(group: list[PlannedSite]) -> bool:
    """Whether one new module can serve every site of ``group`` (the calls of one module)."""
    first = group[0]
    if first.becomes != "PReLU" or first.num_parameters == 1:
        return True
    return all(
        (s.num_parameters, s.unit_axis) == (first.num_parameters, first.unit_axis) for s in group
    )


def _choose_how(model: nn.Module, planned: list[PlannedSite], traced: _Traced) -> list[PlannedSite]:
    """Per site: replace its module, rewrite its caller, or set an attribute.

    Every call of a module swapped to LeakyReLU: one new module serves them all.
    To PReLU, each call gets slopes of its own where the caller's code traces
    (ResNet's ``Bottleneck.relu``); where it does not (a module run in a loop,
    as in RAFT's update block), the calls share one PReLU.
    """
    groups: dict[tuple[str, str | None], list[PlannedSite]] = {}
    for site in planned:
        groups.setdefault((site.module, site.function), []).append(site)
    held: dict[tuple[str, str | None], bool] = {}
    out = []
    for site in planned:
        key = (site.module, site.function)
        group = groups[key]
        every_call = len(group) == site.occurrences
        how = "rewrite"
        if site.function is None:
            if site.occurrences == 1 or (every_call and site.becomes == "LeakyReLU"):
                how = "replace"
            elif every_call and _shareable(group) and site.caller is not None:
                how = "rewrite" if _traces_cached(model, site, traced) else "replace"
            elif site.caller is None or not _traces_cached(model, site, traced):
                how = "slots"  # one module per call, picked by call order at run time
        elif site.caller is not None:
            if every_call and _shareable(group):
                if key not in held:
                    caller = model.get_submodule(site.caller) if site.caller else model
                    held[key] = _held_function(
                        caller, site.function
                    ) is not None and not _traces_cached(model, site, traced)
                how = "attribute" if held[key] else how
            if how == "rewrite" and not _traces_cached(model, site, traced):
                how = "call"  # swapped at run time: the caller's code does not trace
        out.append(replace(site, how=how))
    return out


def plan_swap(
    model: nn.Module,
    to: str = "leaky_relu",
    sites: Report | Iterable[str] | str | None = None,
    *,
    negative_slope: float = 0.01,
    init: float = 0.25,
    per_channel: bool = True,
    example_inputs: Any = None,
    report: Report | None = None,
) -> SwapPlan:
    """Decide what :func:`swap` changes, without changing anything.

    ``sites``: None or ``"all"`` for every ReLU site; ``"flagged"`` or a
    :class:`Report` for its flagged ReLU sites (a finding of severity warning
    or error, :attr:`Report.flagged_sites`); or site names (any kind). The
    sites are found in ``report`` (or ``sites`` when it is a Report), else by
    running ``example_inputs`` through the model once.
    """
    target = _swap_to(to)
    for name, value in (("negative_slope", negative_slope), ("init", init)):
        if not (is_number(value) and abs(value) <= _MAX_SLOPE):
            raise InputError(f"{name} must be a finite number in ±1e4, got {value!r}", option=name)
    if report is None and isinstance(sites, Report):
        report = sites
    if report is None and example_inputs is not None:
        report = _report_from(model, example_inputs)
    if report is None:
        raise SwapError(
            "swap needs example_inputs= (one batch the model accepts) or a Report, "
            "to find every site: shared modules and F.relu calls show only in a forward pass"
        )
    planned = []
    for layer in _chosen(report, sites):
        prelu = target == "prelu"
        planned.append(
            PlannedSite(
                site=layer.name,
                kind=layer.kind,
                module=layer.module,
                function=layer.function,
                caller=layer.caller,
                index=layer.id.index,
                occurrences=layer.id.occurrences,
                units=layer.units,
                becomes="PReLU" if prelu else "LeakyReLU",
                slope=init if prelu else negative_slope,
                num_parameters=layer.units if prelu and per_channel else 1,
                activation_inplace=False if prelu else _inplace(model, layer),
                unit_axis=_prelu_axis(layer),
            )
        )
    traced: _Traced = {}
    chosen = _choose_how(model, planned, traced)
    notes: list[str] = []
    if sites is None or isinstance(sites, Report) or sites in ("all", "flagged"):
        # Chosen by rule, not by name: leave out what cannot be swapped, and say so.
        chosen, notes = _swappable(chosen)
    plan = SwapPlan(to=target, sites=tuple(chosen), notes=tuple(notes))
    return _with_new_names(plan, model)


def _swappable(planned: list[PlannedSite]) -> tuple[list[PlannedSite], list[str]]:
    """The sites that can be swapped as planned, and a note with the reason for each left."""
    keep, notes = [], []
    for site in planned:
        if site.how == "rewrite" and site.caller is None:
            notes.append(
                f"{site.site} left as {site.kind}: it is called from outside any module "
                "of the model (a hook or a wrapper function), so no module's code holds it"
            )
        else:
            keep.append(site)
    return keep, notes


def _new_module(site: PlannedSite, like: torch.Tensor | None) -> nn.Module:
    if site.becomes == "PReLU":
        module: nn.Module = AxisPReLU(site.num_parameters, init=site.slope, axis=site.unit_axis)
        if like is not None:
            module = module.to(device=like.device, dtype=like.dtype)
        return module
    return nn.LeakyReLU(site.slope, inplace=site.activation_inplace)


def _first_tensor(module: nn.Module) -> torch.Tensor | None:
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor
    return None


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at ``path`` under ``root``; returns the (possibly new) root."""
    if path == "":
        return new
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, name, new)
    return root


def _rewrite_caller(
    model: nn.Module, caller_path: str, group: list[PlannedSite], like: torch.Tensor | None
) -> tuple[nn.Module, dict[str, str]]:
    """Trace the caller's own forward and give each chosen call its own module."""
    caller = model.get_submodule(caller_path) if caller_path else model
    where = caller_path or "the model's own forward"
    try:
        tracer = OwnCodeTracer(caller)
        graph = tracer.trace(caller)
    except Exception as error:
        names = ", ".join(s.site for s in group)
        raise SwapError(
            f"cannot swap {names}: {where} does not trace with torch.fx "
            f"({trace_problem(error)}); "
            "replace those calls by modules in your code, or swap other sites"
        ) from None
    gm = torch.fx.GraphModule(tracer.root, graph, class_name=type(caller).__name__)
    prefix = f"{caller_path}." if caller_path else ""
    new_names: dict[str, str] = {}
    nodes_by_key = site_nodes(gm, prefix=prefix, caller=caller_path)
    for site in group:
        nodes = nodes_by_key.get((site.module, site.function), [])
        problem = occurrence_problem(len(nodes), site.occurrences, f"{where}'s code")
        if problem is not None:
            raise SwapError(
                f"cannot swap {site.site}: {problem} (it runs more than once, "
                "or its control flow differs from the traced path)"
            )
        node = nodes[site.index]
        name = site.new_site.rpartition(".")[2]
        if hasattr(gm, name):
            raise SwapError(f"cannot swap {site.site}: {where} already has an attribute {name!r}")
        gm.add_submodule(name, _new_module(site, like))
        with gm.graph.inserting_after(node):
            new_node = gm.graph.call_module(name, (node.args[0],))
        node.replace_all_uses_with(new_node)
        gm.graph.erase_node(node)
        new_names[site.site] = prefix + name
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.train(caller.training)
    return _set_submodule(model, caller_path, gm), new_names


def _how(site: PlannedSite) -> str:
    """How a site is swapped; plans saved before ``how`` existed replace single modules."""
    if site.how:
        return site.how
    return "replace" if site.function is None and site.occurrences == 1 else "rewrite"


def _set_attribute(model: nn.Module, site: PlannedSite, like: torch.Tensor | None) -> None:
    caller = model.get_submodule(site.caller) if site.caller else model
    name = site.new_site.rpartition(".")[2]
    if _function_of(getattr(caller, name, None)) != site.function:
        raise SwapError(
            f"cannot swap {site.site}: {site.caller or 'the model'}.{name} does not hold "
            f"{site.function} (the model is not built as the plan expects)"
        )
    setattr(caller, name, _new_module(site, like))
    # torch's Transformer layers take a fused fast path for ReLU and GELU in eval mode,
    # which would ignore the new module.
    if hasattr(caller, "activation_relu_or_gelu"):
        setattr(caller, "activation_relu_or_gelu", 0)  # noqa: B010 (mypy: a plain attribute)


def apply_plan(model: nn.Module, plan: SwapPlan | str | Path) -> nn.Module:
    """Carry out ``plan`` on ``model`` in place; returns the model (a new root if rewritten)."""
    if not isinstance(plan, SwapPlan):
        plan = SwapPlan.load(plan)
    like = _first_tensor(model)
    replaced = [s for s in plan.sites if _how(s) == "replace"]
    attributes = [s for s in plan.sites if _how(s) == "attribute"]
    rewrites: dict[str, list[PlannedSite]] = {}
    problems = []
    for site in plan.sites:
        if _how(site) != "rewrite":
            continue
        if site.caller is None:
            problems.append(f"{site.site}: called from outside any module of the model")
            continue
        rewrites.setdefault(site.caller, []).append(site)
    if problems:
        raise SwapError("cannot swap " + "; ".join(problems))
    new_modules: dict[str, nn.Module] = {}
    for site in replaced:
        try:
            old = model.get_submodule(site.module) if site.module else None
        except AttributeError:
            raise SwapError(
                f"cannot swap {site.site}: the model has no module {site.module!r}"
            ) from None
        if site.module in new_modules:
            continue  # a shared module's other calls: already replaced
        if old is None or module_kind(old) != site.kind:
            held = "the model itself" if old is None else type(old).__name__
            raise SwapError(
                f"cannot swap {site.site}: {site.module or 'the model'} is {held}, "
                f"not the {site.kind} the plan recorded"
            )
        # every call of a shared module: one new module
        new_modules[site.module] = _new_module(site, like)
        model = replace_everywhere(model, old, new_modules[site.module])
    done_attributes: set[tuple[str | None, str | None]] = set()
    for site in attributes:
        if (site.caller, site.function) not in done_attributes:
            _set_attribute(model, site, like)
            done_attributes.add((site.caller, site.function))
    # Deepest callers first, so a rewrite never replaces a module another rewrite holds.
    for caller_path in sorted(rewrites, key=lambda p: -p.count(".") - (p != "")):
        model, _ = _rewrite_caller(model, caller_path, rewrites[caller_path], like)
    slotted: dict[str, list[PlannedSite]] = {}
    for site in plan.sites:
        if _how(site) == "slots":
            slotted.setdefault(site.module, []).append(site)
    for path, group in slotted.items():
        model = _install_slots(model, path, group, like)
    calls: dict[str, list[PlannedSite]] = {}
    for site in plan.sites:
        if _how(site) == "call":
            calls.setdefault(site.caller or "", []).append(site)
    for caller_path, group in calls.items():
        _install_calls(model, caller_path, group, like)
    return model


def _install_slots(
    model: nn.Module, path: str, group: list[PlannedSite], like: torch.Tensor | None
) -> nn.Module:
    """Put a :class:`PerCall` where the module is: call k runs its k-th slot."""
    first = group[0]
    try:
        old = model.get_submodule(path) if path else model
    except AttributeError:
        raise SwapError(f"cannot swap {first.site}: the model has no module {path!r}") from None
    if module_kind(old) != first.kind:
        raise SwapError(
            f"cannot swap {first.site}: {path or 'the model'} is {type(old).__name__}, "
            f"not the {first.kind} the plan recorded"
        )
    slots: list[nn.Module] = [old] * first.occurrences
    for site in group:
        slots[site.index] = _new_module(site, like)
    return replace_everywhere(model, old, PerCall(slots))


def _install_calls(
    model: nn.Module, caller_path: str, group: list[PlannedSite], like: torch.Tensor | None
) -> None:
    """Give the caller a child module per chosen call, and a forward that runs them."""
    try:
        caller = model.get_submodule(caller_path) if caller_path else model
    except AttributeError:
        raise SwapError(
            f"cannot swap {group[0].site}: the model has no module {caller_path!r}"
        ) from None
    swaps: dict[str, dict[int, str]] = {}
    occurrences: dict[str, int] = {}
    for site in group:
        name = site.new_site.rpartition(".")[2]
        function = site.function or ""
        if name in caller._modules or hasattr(caller, name):
            raise SwapError(
                f"cannot swap {site.site}: {caller_path or 'the model'} already has an "
                f"attribute {name!r}"
            )
        caller.add_module(name, _new_module(site, like))
        swaps.setdefault(function, {})[site.index] = name
        occurrences[function] = site.occurrences
    install_swapped_calls(caller, swaps, occurrences)


def _with_new_names(plan: SwapPlan, model: nn.Module) -> SwapPlan:
    """Name the module each swapped site will live in, avoiding the caller's own names."""
    taken: dict[str, set[str]] = {}
    sites = []
    for site in plan.sites:
        how = _how(site)
        if how == "replace":
            sites.append(replace(site, new_site=site.module))
            continue
        if how == "slots":
            prefix = f"{site.module}." if site.module else ""
            sites.append(replace(site, new_site=f"{prefix}slots.{site.index}"))
            continue
        caller_path = site.caller or ""
        prefix = f"{caller_path}." if caller_path else ""
        if how == "attribute":
            caller = model.get_submodule(caller_path) if caller_path else model
            held = _held_function(caller, site.function or "")
            sites.append(replace(site, new_site=prefix + (held or "")))
            continue
        if caller_path not in taken:
            caller = model.get_submodule(caller_path) if caller_path else model
            taken[caller_path] = set(vars(caller)) | set(caller._modules) | set(dir(type(caller)))
        stem = site.function or site.module.rpartition(".")[2]
        wanted = stem if site.occurrences == 1 else f"{stem}_{site.index}"
        name, n = wanted, 1
        while name in taken[caller_path]:
            name, n = f"{wanted}_{n}", n + 1
        taken[caller_path].add(name)
        sites.append(replace(site, new_site=prefix + name))
    return replace(plan, sites=tuple(sites))


HOWTO = """\
deadcheck swapped {count} site(s) to {becomes} ({added} parameters added).

In your training script, build the model as before, then:

    model = deadcheck.swap(model, plan="{folder}/swap_plan.json")
    model.load_state_dict(torch.load("{folder}/state_dict.pt", weights_only=True))

To scan the swapped model:

    deadcheck scan {target} --plan {folder}/swap_plan.json --weights {folder}/state_dict.pt
"""


def save_swap(
    model: nn.Module,
    plan: SwapPlan,
    folder: str | Path,
    *,
    target: str = "TARGET",
    force: bool = False,
) -> str:
    """Write a swapped model into ``folder``: its state dict, the plan, and HOWTO.txt.

    The folder appears whole or not at all (an existing one is replaced only
    with ``force``, once the new one is complete). Returns the HOWTO text.
    """
    howto = HOWTO.format(
        count=len(plan.sites),
        becomes=plan.sites[0].becomes if plan.sites else "nothing",
        added=plan.parameters_added,
        folder=Path(folder).as_posix(),  # "swapped/" -> "swapped": paths meant for pasting
        target=target,
    )
    files = {"swap_plan.json": plan.to_json().encode(), "HOWTO.txt": howto.encode()}
    write_repair(folder, model, files, force=force)
    return howto


def swap(
    model: nn.Module,
    to: str = "leaky_relu",
    sites: Report | Iterable[str] | str | None = None,
    *,
    negative_slope: float = 0.01,
    init: float = 0.25,
    per_channel: bool = True,
    inplace: bool = False,
    example_inputs: Any = None,
    plan: SwapPlan | str | Path | None = None,
) -> nn.Module:
    """A copy of ``model`` with the chosen ReLU sites swapped (the model itself if ``inplace``).

    ``to``: ``"leaky_relu"`` (slope ``negative_slope``) or ``"prelu"`` (slope
    learned, starting at ``init``; one per unit when ``per_channel``). With
    ``plan=`` (a :class:`SwapPlan` or the path of its JSON) the plan is applied
    as saved, so a freshly built model gets exactly the swapped structure and
    ``load_state_dict`` fits.
    """
    if plan is not None:
        given = [
            name
            for name, value, default in (
                ("to", to, "leaky_relu"),
                ("sites", sites, None),
                ("negative_slope", negative_slope, 0.01),
                ("init", init, 0.25),
                ("per_channel", per_channel, True),
                ("example_inputs", example_inputs, None),
            )
            if ((value is not None) if default is None else value != default)
        ]
        if given:
            raise SwapError(
                f"swap(plan=...) replays the plan as saved, so {', '.join(given)} would be "
                "ignored: make a new plan with plan_swap(...) instead"
            )
    if plan is None:
        plan = plan_swap(
            model,
            to,
            sites,
            negative_slope=negative_slope,
            init=init,
            per_channel=per_channel,
            example_inputs=example_inputs,
        )
        for note in plan.notes:
            warnings.warn(f"deadcheck.swap: {note}", stacklevel=2)
    if not inplace:
        return apply_plan(copy.deepcopy(model), plan)
    apply_plan(copy.deepcopy(model), plan)  # a dry run: a swap that fails leaves no half-swap
    return apply_plan(model, plan)
