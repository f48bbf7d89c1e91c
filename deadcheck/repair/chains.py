"""Where a site's units come from and where they go: the producer -> activation -> consumers chain.

Recycling and pruning both change whole units: a row of the layer that
produces them, and the columns of the layers that read them. Both need to
know, from the model's code, that the chain exists and keeps units apart all
the way. This module finds it:

* **locate** a recorded site in a torch.fx graph (torch's layers as leaves):
  the whole model's, else the graph of the module whose code calls the
  activation. A forward with defaulted flags (``if embed: return ...``) is
  traced with them at their defaults (``concrete_args``): only the graph is
  read here, nothing is rewritten, and the defaults are what ran;
* **follow** the activation's output through the ops that keep each unit
  separate, to the Linear and Conv layers that read it.

What keeps units separate (``ALLOWED``): Dropout and Identity; on a channel
site (units on axis 1 of a rank >= 3 output), max and average pooling (module
or function, adaptive too), spatial means, sums and maxima, zero padding
(``F.pad``, ``nn.ZeroPad2d``), a BatchNorm after the activation, and a
flatten (``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(n, -1)``,
``nn.Flatten()``) into a Linear whose columns map to the units in blocks.
Anything else (a residual add, a LayerNorm, a concatenation, attention) ends
the chain with the reason, and the repair leaves the site as it is.
"""

from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from deadcheck.core.sites import SiteId
from deadcheck.repair.graph import TorchLeafTracer, occurrence_problem, site_nodes, trace_problem

__all__ = ["ALLOWED", "Chain", "Consumer", "Located", "find_chain", "locate"]

PRODUCERS = (nn.Linear, nn.modules.conv._ConvNd)
NORMS = (nn.modules.batchnorm._BatchNorm,)
_ANY_SITE = (nn.Dropout, nn.Identity, nn.modules.dropout._DropoutNd)
_CHANNEL_MODULES = (
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
)
_PAD_MODULES = (nn.modules.padding._ConstantPadNd,)
_POOL_FUNCTIONS = {
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    torch.max_pool1d,
    torch.max_pool2d,
    torch.max_pool3d,
    torch.avg_pool1d,
    torch.adaptive_avg_pool1d,
}
_DROPOUT_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout}

#: The ops a chain may pass through, in words (the docs and skip reasons use it).
ALLOWED = (
    "Dropout, Identity; on channel sites also max/average pooling, spatial "
    "mean/sum/amax, zero padding, BatchNorm, and flatten into a Linear"
)


@dataclass(frozen=True)
class Consumer:
    """A layer that reads the site's units, and what lies between."""

    module: nn.Module
    path: str
    #: Columns per unit: 1, or the flattened spatial size when a flatten comes first.
    span: int
    #: A BatchNorm after the activation on the way (its constant reaches the consumer).
    norm: nn.Module | None
    norm_path: str | None
    #: Why a constant from a BatchNorm after the activation would not stay constant
    #: on the way (zero padding, an average pool that counts padding), or None.
    border: str | None


@dataclass(frozen=True)
class Chain:
    """Producer -> (BatchNorm) -> activation -> per-unit ops -> consumers."""

    producer: nn.Module
    producer_path: str
    norm: nn.Module | None
    norm_path: str | None
    consumers: tuple[Consumer, ...]

    @property
    def norms_after(self) -> tuple[nn.Module, ...]:
        seen: dict[int, nn.Module] = {}
        for consumer in self.consumers:
            if consumer.norm is not None:
                seen.setdefault(id(consumer.norm), consumer.norm)
        return tuple(seen.values())


@dataclass(frozen=True)
class Located:
    """A site's node in a graph of ``root`` (at ``prefix`` in the model)."""

    gm: torch.fx.GraphModule
    node: torch.fx.Node
    prefix: str


def _concrete_args(module: nn.Module) -> dict[str, Any] | None:
    """The forward's non-tensor parameters with defaults, at their defaults (None: none)."""
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    fixed = {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty
        and (p.default is None or isinstance(p.default, (bool, int, float, str)))
    }
    return fixed or None


def _trace(module: nn.Module) -> torch.fx.GraphModule | str:
    """``module``'s graph (torch's layers leaves), with defaulted flags fixed if need be."""
    try:
        return torch.fx.GraphModule(module, TorchLeafTracer().trace(module))
    except Exception as error:
        first = error
    fixed = _concrete_args(module)
    if fixed is not None:
        try:
            graph = TorchLeafTracer().trace(module, concrete_args=fixed)
            return torch.fx.GraphModule(module, graph)
        except Exception:  # report the plain trace's problem: it is the model's own
            pass
    return f"does not trace with torch.fx ({trace_problem(first)})"


class Graphs:
    """Traces of the model and its modules, made once per repair."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._graphs: dict[str, torch.fx.GraphModule | str] = {}

    def graph(self, path: str) -> torch.fx.GraphModule | str:
        if path not in self._graphs:
            module = self.model.get_submodule(path) if path else self.model
            self._graphs[path] = _trace(module)
        return self._graphs[path]


def _site_nodes(gm: torch.fx.GraphModule, prefix: str) -> dict[Any, list[torch.fx.Node]]:
    nodes = site_nodes(gm, prefix=prefix)
    if not prefix:
        return nodes
    # Functional calls are named by their innermost module, relative to the traced root.
    out: dict[Any, list[torch.fx.Node]] = {}
    for (module, function), found in nodes.items():
        if function is not None:
            module = prefix + module if module else prefix.rstrip(".")
        out.setdefault((module, function), []).extend(found)
    return out


def locate(graphs: Graphs, site: SiteId) -> Located | str:
    """The site's node: in the whole model's graph, else in its caller's; or why neither."""
    tried: list[str] = []
    paths = [""]
    if site.caller:
        paths.append(site.caller)
    for path in paths:
        gm = graphs.graph(path)
        where = path or "the model"
        if isinstance(gm, str):
            tried.append(f"{where} {gm}")
            continue
        prefix = f"{path}." if path else ""
        found = _site_nodes(gm, prefix).get((site.module, site.function), [])
        problem = occurrence_problem(len(found), site.occurrences, f"{where}'s code")
        if problem is not None:
            tried.append(problem)
            continue
        return Located(gm, found[site.index], prefix)
    return "; ".join(tried)


def _module(gm: torch.fx.GraphModule, node: Any) -> nn.Module | None:
    if isinstance(node, torch.fx.Node) and node.op == "call_module":
        return gm.get_submodule(str(node.target))
    return None


def _describe(gm: torch.fx.GraphModule, node: torch.fx.Node) -> str:
    module = _module(gm, node)
    if module is not None:
        return f"{type(module).__name__} {node.target}"
    if node.op in ("call_function", "call_method"):
        if node.target in (operator.add, torch.add, operator.iadd) or node.target == "add":
            return "a residual add"
        return str(getattr(node.target, "__name__", node.target))
    return "the model's output" if node.op == "output" else node.op


def _dims_spatial(node: torch.fx.Node, rank: int) -> bool:
    """Whether a reduction's dims are all spatial (never batch or channel)."""
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    if isinstance(dims, int):
        dims = (dims,)
    if not isinstance(dims, (tuple, list)) or not dims:
        return False
    return all(isinstance(d, int) and (d % rank) >= 2 for d in dims)


def _reads_shape_only(node: torch.fx.Node) -> bool:
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    return node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)


def _arg(node: torch.fx.Node, index: int, name: str, default: Any) -> Any:
    """A call's argument, by position or keyword."""
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _is_flatten(node: torch.fx.Node, module: nn.Module | None) -> bool:
    if isinstance(module, nn.Flatten):
        return module.start_dim == 1 and module.end_dim == -1
    target = node.target
    if target is torch.flatten or target == "flatten":
        return bool(_arg(node, 1, "start_dim", 0) == 1 and _arg(node, 2, "end_dim", -1) == -1)
    if target in ("view", "reshape") or target is torch.reshape:
        shape: Any = _arg(node, 1, "shape", ()) if target is torch.reshape else node.args[1:]
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return len(shape) == 2 and bool(shape[1] == -1)
    return False


def _zero_pad(node: torch.fx.Node, module: nn.Module | None) -> bool:
    if isinstance(module, _PAD_MODULES):
        return float(getattr(module, "value", 0.0)) == 0.0
    if node.target is F.pad:
        value = _arg(node, 3, "value", None)
        return bool(
            _arg(node, 2, "mode", "constant") == "constant" and (value is None or value == 0)
        )
    return False


def _counts_padding(node: torch.fx.Node, module: nn.Module | None) -> bool:
    """An average pool that pads and counts the padding: a constant does not stay constant."""
    padding: Any
    if isinstance(module, nn.modules.pooling._AvgPoolNd):
        padding = getattr(module, "padding", 0)
        include = getattr(module, "count_include_pad", True)
    elif node.target in (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, torch.avg_pool1d):
        padding = _arg(node, 3, "padding", 0)
        include = _arg(node, 5, "count_include_pad", True)
    else:
        return False
    padding = padding if isinstance(padding, (tuple, list)) else (padding,)
    return any(padding) and bool(include)


@dataclass(frozen=True)
class _Way:
    """What lies between the activation and a node on the way to a consumer."""

    norm: nn.Module | None = None
    norm_path: str | None = None
    border: str | None = None
    flattened: bool = False


def _consumer_of(
    gm: torch.fx.GraphModule,
    user: torch.fx.Node,
    module: nn.Module,
    way: _Way,
    units: int,
    channels: bool,
    prefix: str,
) -> Consumer | str:
    path = prefix + str(user.target)
    if getattr(module, "groups", 1) != 1:
        return f"its output goes to a grouped convolution ({user.target})"
    if isinstance(module, nn.Linear):
        if way.flattened:
            if module.in_features % units:
                return (
                    f"{user.target} reads {module.in_features} columns, not a multiple of {units}"
                )
            span = module.in_features // units
        elif channels:
            return f"{user.target} is a Linear applied across a channel site's spatial axis"
        elif module.in_features != units:
            return f"{user.target} reads {module.in_features} features, not the site's {units}"
        else:
            span = 1
        return Consumer(module, path, span, way.norm, way.norm_path, way.border)
    if way.flattened or not channels:
        return f"{user.target} is a convolution reading flattened or feature units"
    if getattr(module, "in_channels", None) != units:
        return f"{user.target} reads {getattr(module, 'in_channels', '?')} channels, not {units}"
    return Consumer(module, path, 1, way.norm, way.norm_path, way.border)


def find_chain(located: Located, *, units: int, rank: int, unit_axis: int) -> Chain | str:
    """The site's chain, or why its units are not kept apart from producer to consumers.

    ``rank`` and ``unit_axis`` are the recorded output's: a channel site has
    units on axis 1 of a rank >= 3 output, a feature site on the last axis.
    """
    gm, node, prefix = located.gm, located.node, located.prefix
    channels = rank >= 3 and unit_axis == 1
    if not channels and unit_axis not in (rank - 1, -1):
        return f"its units are on axis {unit_axis}, neither channels nor the last axis"
    source = node.args[0] if node.args else None
    if not isinstance(source, torch.fx.Node) or len(source.users) != 1:
        return "the activation's input is also used elsewhere"
    norm, norm_path = None, None
    if isinstance(_module(gm, source), NORMS):
        norm, norm_path = _module(gm, source), prefix + str(source.target)
        source = source.args[0]
        if not isinstance(source, torch.fx.Node) or len(source.users) != 1:
            return "the BatchNorm's input is also used elsewhere"
    producer = _module(gm, source)
    if not isinstance(producer, PRODUCERS):
        return f"its input comes from {_describe(gm, source)}, not a Linear or Conv"
    if getattr(producer, "groups", 1) != 1:
        return "its producer is a grouped convolution"
    if sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == source.target) != 1:
        return f"its producer {source.target} is called more than once"
    # A BatchNorm normalises axis 1: per unit on a channel site, or on (N, F) features.
    norms_per_unit = channels or rank == 2

    def normalises(module: nn.Module | None, way: _Way) -> bool:
        return (
            isinstance(module, NORMS) and norms_per_unit and way.norm is None and not way.flattened
        )

    consumers: list[Consumer] = []
    frontier: list[tuple[torch.fx.Node, _Way]] = [(u, _Way()) for u in node.users]
    while frontier:
        user, way = frontier.pop()
        module = _module(gm, user)
        target = user.target
        if _reads_shape_only(user):
            continue  # x.size(0), x.shape: no unit's value flows there
        if isinstance(module, _ANY_SITE) or target in _DROPOUT_FUNCTIONS:
            frontier.extend((u, way) for u in user.users)
        elif (
            isinstance(module, NORMS) and way.norm is None and norms_per_unit and not way.flattened
        ):
            norm_after = _Way(module, prefix + str(target), way.border)
            frontier.extend((u, norm_after) for u in user.users)
        elif way.flattened or not channels:
            if isinstance(module, PRODUCERS):
                consumer = _consumer_of(gm, user, module, way, units, channels, prefix)
                if isinstance(consumer, str):
                    return consumer
                consumers.append(consumer)
            else:
                return f"its output goes to {_describe(gm, user)}, which mixes or reshapes units"
        elif (
            isinstance(module, _CHANNEL_MODULES)
            or target in _POOL_FUNCTIONS
            or (target in ("mean", "sum", "amax") and _dims_spatial(user, rank))
            or (target in (torch.mean, torch.sum, torch.amax) and _dims_spatial(user, rank))
        ):
            border = way.border or (
                "an average pool counts its padding" if _counts_padding(user, module) else None
            )
            frontier.extend((u, _Way(way.norm, way.norm_path, border)) for u in user.users)
        elif _zero_pad(user, module):
            border = way.border or "zero padding surrounds it"
            frontier.extend((u, _Way(way.norm, way.norm_path, border)) for u in user.users)
        elif _is_flatten(user, module):
            flat = _Way(way.norm, way.norm_path, way.border, flattened=True)
            frontier.extend((u, flat) for u in user.users)
        elif isinstance(module, PRODUCERS):
            consumer = _consumer_of(gm, user, module, way, units, channels, prefix)
            if isinstance(consumer, str):
                return consumer
            consumers.append(consumer)
        elif user.op == "output":
            where = prefix.rstrip(".") or "the model"
            return f"its output leaves the code of {where}, so what reads it is not known"
        else:
            return f"its output goes to {_describe(gm, user)}, which mixes or reshapes units"
    if not consumers:
        return "nothing reads its output"
    return Chain(producer, prefix + str(source.target), norm, norm_path, tuple(consumers))
