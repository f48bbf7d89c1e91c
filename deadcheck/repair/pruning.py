"""Remove dead units exactly: smaller layers, the same outputs on the data they were judged on.

A dead ReLU (or ReLU6) unit outputs exactly zero at every position of the
data it was recorded on, so whatever reads it multiplies a zero: removing the
producer's row (and a BatchNorm's channel in between) and the consumers'
columns changes no output on that data, up to float rounding in the sums that
got shorter. Structural pruning libraries remove units by an importance score
and fine-tune afterwards; deadcheck removes only units it saw to be exactly
zero, so no fine-tuning is needed for the data they were judged on. On other
data a unit judged dead may fire; "exact" means exact on the judged data.

A BatchNorm after the activation turns the zero into a constant
``bias - weight * mean / sqrt(var + eps)`` (eval mode, running statistics).
It is folded into the consumer's bias where that is exact: a Linear, or a
convolution without padding, reached without zero padding on the way. A
padded convolution sees the constant only inside the border, so such a unit
is left in place, with the reason.

Chains come from :mod:`deadcheck.repair.chains`; a site whose units do not
pass unmixed from producer to consumers (a residual add, a LayerNorm, a
concatenation) is left whole, with the reason. A prune is a plan
(:class:`PrunePlan`, JSON ``deadcheck.prune-plan/1``) that rebuilds the same
smaller layers in a freshly built model, so the saved state dict loads with a
strict ``load_state_dict``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deadcheck.core import jsontext
from deadcheck.core.errors import InputError, SwapError
from deadcheck.core.kinds import kind
from deadcheck.repair.chains import Chain, Graphs, find_chain, locate
from deadcheck.repair.folder import write_repair
from deadcheck.repair.graph import replace_everywhere
from deadcheck.results.report import Report
from deadcheck.results.stats import Stats

__all__ = [
    "PRUNE_SCHEMA",
    "PrunePlan",
    "PruneResult",
    "PrunedModule",
    "apply_prune_plan",
    "count_parameters",
    "prune",
    "save_prune",
]

PRUNE_SCHEMA = "deadcheck.prune-plan/1"

#: The layers a prune rebuilds smaller: torch's own, whose weight layout it knows.
_LAYERS: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        nn.Linear,
        nn.Conv1d,
        nn.Conv2d,
        nn.Conv3d,
        nn.BatchNorm1d,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
    )
}
_PRUNABLE_KINDS = ("ReLU", "ReLU6")
_MAX_UNITS = 1 << 31


@dataclass(frozen=True)
class PrunedModule:
    """One layer rebuilt smaller: which outputs (rows, channels) and inputs (columns) it keeps."""

    module: str
    type: str
    size_out: int
    keep_out: tuple[int, ...]
    size_in: int = 0
    keep_in: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "type": self.type,
            "size_out": self.size_out,
            "keep_out": list(self.keep_out),
            "size_in": self.size_in,
            "keep_in": list(self.keep_in),
        }


@dataclass(frozen=True)
class PrunePlan:
    """The layers a prune rebuilds, and the units it removed per site."""

    modules: tuple[PrunedModule, ...]
    removed: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PRUNE_SCHEMA,
            "removed": {site: list(units) for site, units in self.removed.items()},
            "modules": [m.to_dict() for m in self.modules],
        }

    def to_json(self) -> str:
        return jsontext.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> PrunePlan:
        """A plan from its JSON form, checked before anything touches a model."""
        if not isinstance(data, dict) or data.get("schema") != PRUNE_SCHEMA:
            schema = str(data.get("schema") if isinstance(data, dict) else type(data).__name__)
            raise SwapError(f"not a prune plan (schema {schema[:40]!r}, want {PRUNE_SCHEMA})")
        modules = data.get("modules")
        removed = data.get("removed", {})
        if not isinstance(modules, list) or not isinstance(removed, dict):
            raise SwapError("prune plan 'modules' is not a list, or 'removed' not an object")
        return cls(
            modules=tuple(_checked_module(m, i) for i, m in enumerate(modules)),
            removed={
                str(site): tuple(_indices(units, f"removed[{site!r}]", _MAX_UNITS))
                for site, units in removed.items()
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> PrunePlan:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _indices(value: Any, where: str, size: int) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size for i in value
    ):
        raise SwapError(f"prune plan {where} is not a list of indices below {size}")
    if value != sorted(set(value)):
        raise SwapError(f"prune plan {where} is not sorted without repeats")
    return value


def _checked_module(entry: Any, i: int) -> PrunedModule:
    where = f"module {i}"
    if not isinstance(entry, dict):
        raise SwapError(f"prune plan {where} is not an object")
    path, type_name = entry.get("module"), entry.get("type")
    if not isinstance(path, str) or not all(
        (part.isidentifier() or part.isdigit()) and not part.startswith("__")
        for part in path.split(".")
    ):
        raise SwapError(f"prune plan {where}: module {str(path)[:40]!r} is not a module path")
    if type_name not in _LAYERS:
        raise SwapError(f"prune plan {where}: type {str(type_name)[:40]!r} is not prunable")
    sizes = [entry.get("size_out"), entry.get("size_in", 0)]
    if not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= _MAX_UNITS for s in sizes
    ):
        raise SwapError(f"prune plan {where}: sizes are not counts")
    keep_out = _indices(entry.get("keep_out"), f"{where} keep_out", sizes[0])
    keep_in = _indices(entry.get("keep_in", []), f"{where} keep_in", sizes[1] or 1)
    if not keep_out:
        raise SwapError(f"prune plan {where}: keeps no output")
    return PrunedModule(path, type_name, sizes[0], tuple(keep_out), sizes[1], tuple(keep_in))


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` did: the smaller model, its plan, and every site left and why."""

    model: nn.Module = field(repr=False, compare=False)
    plan: PrunePlan
    #: Units removed per site.
    pruned: dict[str, tuple[int, ...]]
    #: Sites with dead units that were left whole, and why.
    skipped: dict[str, str]
    #: Dead units left in place at a pruned site, and why.
    kept: dict[str, str]
    parameters_before: int
    parameters_after: int

    @property
    def units(self) -> int:
        return sum(len(u) for u in self.pruned.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "deadcheck.prune/1",
            "pruned": {site: list(units) for site, units in self.pruned.items()},
            "skipped": dict(self.skipped),
            "kept": dict(self.kept),
            "parameters_before": self.parameters_before,
            "parameters_after": self.parameters_after,
        }


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, each shared tensor once."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class _Edits:
    """Per layer: the outputs and inputs to drop, and what to add to its bias first."""

    drop_out: dict[int, set[int]] = field(default_factory=dict)
    drop_in: dict[int, set[int]] = field(default_factory=dict)
    bias: dict[int, torch.Tensor] = field(default_factory=dict)
    layers: dict[int, nn.Module] = field(default_factory=dict)

    def out(self, module: nn.Module, units: Iterable[int]) -> None:
        self.layers[id(module)] = module
        self.drop_out.setdefault(id(module), set()).update(units)

    def inputs(self, module: nn.Module, columns: Iterable[int]) -> None:
        self.layers[id(module)] = module
        self.drop_in.setdefault(id(module), set()).update(columns)


def _norm_constant(norm: nn.Module, units: list[int]) -> torch.Tensor | str:
    """What a BatchNorm makes of a zero on each unit, in eval mode; or why it is not constant."""
    mean, var = getattr(norm, "running_mean", None), getattr(norm, "running_var", None)
    if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor):
        return "a BatchNorm after it normalises with batch statistics, so its zero is no constant"
    rows = torch.tensor(units, dtype=torch.long)
    value = -mean[rows] / torch.sqrt(var[rows] + norm.eps)  # type: ignore[operator]
    weight, bias = getattr(norm, "weight", None), getattr(norm, "bias", None)
    if isinstance(weight, torch.Tensor):
        value = value * weight[rows]
    if isinstance(bias, torch.Tensor):
        value = value + bias[rows]
    return value.detach()


def _fold_problem(chain: Chain) -> str | None:
    """Why a constant from a BatchNorm after the activation cannot be folded exactly, or None."""
    for consumer in chain.consumers:
        if consumer.norm is None:
            continue
        module = consumer.module
        if consumer.border is not None:
            return f"a BatchNorm after it makes its zero a constant, and {consumer.border}"
        padding = getattr(module, "padding", 0)
        if isinstance(padding, str):
            padded = padding != "valid"
        else:
            padded = any(p != 0 for p in (padding if isinstance(padding, tuple) else (padding,)))
        if padded:
            return (
                f"a BatchNorm after it makes its zero a constant, which the padded "
                f"convolution {consumer.path} sees only inside the border"
            )
        if getattr(module, "bias", None) is None:
            return (
                f"a BatchNorm after it makes its zero a constant, and {consumer.path} has no bias"
            )
    return None


def _columns(units: Iterable[int], span: int) -> list[int]:
    return [u * span + k for u in units for k in range(span)]


@torch.no_grad()
def _plan_chain(chain: Chain, units: list[int], edits: _Edits) -> None:
    edits.out(chain.producer, units)
    if chain.norm is not None:
        edits.out(chain.norm, units)
    for norm in chain.norms_after:
        constant = _norm_constant(norm, units)
        assert isinstance(constant, torch.Tensor)  # checked by the caller
        edits.out(norm, units)
        for consumer in chain.consumers:
            if consumer.norm is not norm:
                continue
            weight = consumer.module.weight
            assert isinstance(weight, torch.Tensor)
            for unit, c in zip(units, constant.tolist(), strict=True):
                cols = _columns([unit], consumer.span)
                reads = weight[:, cols].reshape(weight.shape[0], -1).sum(1)
                add = edits.bias.setdefault(id(consumer.module), torch.zeros_like(reads))
                add += c * reads
    for consumer in chain.consumers:
        edits.inputs(consumer.module, _columns(units, consumer.span))


def _sizes(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features
    if isinstance(module, nn.modules.conv._ConvNd):
        return module.out_channels, module.in_channels
    return int(getattr(module, "num_features", 0)), 0


@torch.no_grad()
def _smaller(module: nn.Module, keep_out: list[int], keep_in: list[int]) -> nn.Module:
    """A copy of ``module`` keeping those outputs and inputs (weights sliced, not re-drawn)."""
    new = copy.deepcopy(module)
    rows = torch.tensor(keep_out, dtype=torch.long)
    if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
        cols = torch.tensor(keep_in, dtype=torch.long)
        new.weight = nn.Parameter(module.weight[rows][:, cols].clone(), module.weight.requires_grad)
        if module.bias is not None:
            new.bias = nn.Parameter(module.bias[rows].clone(), module.bias.requires_grad)
        if isinstance(new, nn.Linear):
            new.out_features, new.in_features = len(keep_out), len(keep_in)
        else:
            new.out_channels, new.in_channels = len(keep_out), len(keep_in)  # type: ignore[assignment]
        return new
    for name, param in module.named_parameters(recurse=False):
        setattr(new, name, nn.Parameter(param[rows].clone(), param.requires_grad))
    for name, buffer in module.named_buffers(recurse=False):
        if buffer is not None and buffer.dim() == 1:
            setattr(new, name, buffer[rows].clone())
    new.num_features = len(keep_out)  # type: ignore[assignment]
    return new


def _path_of(model: nn.Module, module: nn.Module) -> str:
    for path, candidate in model.named_modules(remove_duplicate=False):
        if candidate is module:
            return path
    raise SwapError(f"a {type(module).__name__} of the chain is not held by the model")


def _dead_sites(source: Stats | Report, sites: Iterable[str] | None) -> list[Any]:
    wanted = set(sites) if sites is not None else None
    if wanted is not None:
        unknown = sorted(wanted - {s.name for s in source.sites})
        if unknown:
            raise InputError(
                f"no site named {', '.join(unknown)}; sites are: "
                + ", ".join(s.name for s in source.sites),
                option="sites",
            )
    return [
        s
        for s in source.sites
        if (wanted is None or s.name in wanted) and kind(s.kind).name in _PRUNABLE_KINDS
    ]


def prune(
    model: nn.Module,
    report: Stats | Report | None = None,
    *,
    plan: PrunePlan | str | Path | None = None,
    sites: Iterable[str] | None = None,
    inplace: bool = False,
) -> PruneResult:
    """Remove the dead units of ``model``'s ReLU and ReLU6 sites; see the module doc.

    ``report`` is a recording of ``model`` (a Report or Stats) on the data
    the units should be judged on; with ``plan=`` a saved plan is replayed
    instead (a freshly built model then loads the pruned state dict). The
    model is copied unless ``inplace``; the smaller one is ``result.model``.
    """
    pruned_model = model if inplace else copy.deepcopy(model)
    before = count_parameters(model)
    if plan is not None:
        plan = plan if isinstance(plan, PrunePlan) else PrunePlan.load(plan)
        pruned_model = apply_prune_plan(pruned_model, plan)
        return PruneResult(
            pruned_model, plan, dict(plan.removed), {}, {}, before, count_parameters(pruned_model)
        )
    if report is None:
        raise InputError("prune needs a report of the model on its data, or plan=", option="report")
    if report.samples == 0:
        raise InputError("the report saw no samples: no unit can be judged dead", option="report")
    graphs = Graphs(pruned_model)
    edits = _Edits()
    removed: dict[str, tuple[int, ...]] = {}
    skipped: dict[str, str] = {}
    kept: dict[str, str] = {}
    for site in _dead_sites(report, sites):
        dead = list(site.dead_units)
        if not dead:
            continue
        located = locate(graphs, site.id)
        if isinstance(located, str):
            skipped[site.name] = located
            continue
        chain = find_chain(
            located, units=site.units, rank=len(site.shape) or 2, unit_axis=site.unit_axis
        )
        if isinstance(chain, str):
            skipped[site.name] = chain
            continue
        layers = [
            chain.producer,
            chain.norm,
            *chain.norms_after,
            *(c.module for c in chain.consumers),
        ]
        odd = [m for m in layers if m is not None and type(m).__name__ not in _LAYERS]
        if odd:
            skipped[site.name] = f"{type(odd[0]).__name__} is not a layer prune can rebuild"
            continue
        problem = _fold_problem(chain)
        constant = next(
            (c for n in chain.norms_after if isinstance(c := _norm_constant(n, dead), str)), None
        )
        if problem is not None or constant is not None:
            skipped[site.name] = problem or str(constant)
            continue
        if len(dead) == site.units:
            kept[site.name] = (
                f"every unit is dead; unit {dead[0]} is kept so the layer keeps a width"
            )
            dead = dead[1:]
        if not dead:
            continue
        _plan_chain(chain, dead, edits)
        removed[site.name] = tuple(dead)
    modules: list[PrunedModule] = []
    for key, module in edits.layers.items():
        size_out, size_in = _sizes(module)
        keep_out = [i for i in range(size_out) if i not in edits.drop_out.get(key, set())]
        keep_in = [i for i in range(size_in) if i not in edits.drop_in.get(key, set())]
        if key in edits.bias:
            bias = module.bias
            assert isinstance(bias, torch.Tensor)
            with torch.no_grad():
                bias += edits.bias[key].to(bias)
        modules.append(
            PrunedModule(
                _path_of(pruned_model, module),
                type(module).__name__,
                size_out,
                tuple(keep_out),
                size_in,
                tuple(keep_in),
            )
        )
        pruned_model = replace_everywhere(pruned_model, module, _smaller(module, keep_out, keep_in))
    result_plan = PrunePlan(tuple(modules), removed)
    return PruneResult(
        pruned_model, result_plan, removed, skipped, kept, before, count_parameters(pruned_model)
    )


def apply_prune_plan(model: nn.Module, plan: PrunePlan | str | Path) -> nn.Module:
    """Rebuild ``plan``'s layers smaller in ``model`` (in place); returns the model."""
    if not isinstance(plan, PrunePlan):
        plan = PrunePlan.load(plan)
    found = []
    for entry in plan.modules:
        try:
            module = model.get_submodule(entry.module) if entry.module else model
        except AttributeError:
            raise SwapError(
                f"cannot prune {entry.module!r}: the model has no such module"
            ) from None
        if type(module).__name__ != entry.type or _sizes(module) != (entry.size_out, entry.size_in):
            raise SwapError(
                f"cannot prune {entry.module}: it is {type(module).__name__} of sizes "
                f"{_sizes(module)}, and the plan expects {entry.type} of "
                f"{(entry.size_out, entry.size_in)} (the model is not built as the plan expects)"
            )
        found.append((module, entry))
    for module, entry in found:
        model = replace_everywhere(
            model, module, _smaller(module, list(entry.keep_out), list(entry.keep_in))
        )
    return model


HOWTO = """\
deadcheck removed {units} dead unit(s) at {sites} site(s): {before} -> {after} parameters.

In your code, build the model as before, then:

    model = deadcheck.prune(model, plan="{folder}/prune_plan.json").model
    model.load_state_dict(torch.load("{folder}/state_dict.pt", weights_only=True))

To scan the pruned model:

    deadcheck scan {target} --plan {folder}/prune_plan.json --weights {folder}/state_dict.pt
"""


def save_prune(
    result: PruneResult, folder: str | Path, *, target: str = "TARGET", force: bool = False
) -> str:
    """Write a pruned model into ``folder``: its state dict, the plan, pruned.json, HOWTO.txt."""
    howto = HOWTO.format(
        units=result.units,
        sites=len(result.pruned),
        before=result.parameters_before,
        after=result.parameters_after,
        folder=Path(folder).as_posix(),
        target=target,
    )
    files = {
        "prune_plan.json": result.plan.to_json().encode(),
        "pruned.json": jsontext.dumps(result.to_dict()).encode(),
        "HOWTO.txt": howto.encode(),
    }
    write_repair(folder, result.model, files, force=force)
    return howto
