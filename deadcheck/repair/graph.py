"""What every repair needs of a model's code: a torch.fx graph and the activation sites in it.

Swap and recycle both trace code, find the nodes of a recorded site (by the
recorder's own naming: a module path, or a caller and a function with its
index), and check that the code makes as many such calls as ran per pass
before touching anything. A third repair finds all of it here.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx
from torch import nn

from deadcheck.recording.activations import module_kind, parse_call

__all__ = [
    "OwnCodeTracer",
    "TorchLeafTracer",
    "called_function",
    "occurrence_problem",
    "replace_everywhere",
    "site_nodes",
    "trace_problem",
]


class OwnCodeTracer(torch.fx.Tracer):
    """Traces one module's own forward code; every child module is a leaf (swap rewrites it)."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._root = root

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return m is not self._root


class TorchLeafTracer(torch.fx.Tracer):
    """torch's own layers are leaves: the graph shows how the user's code wires them."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return type(m).__module__.startswith("torch.nn.") and not m._modules


def called_function(node: torch.fx.Node) -> str | None:
    """The family function a node calls, by deadcheck's naming ("relu"), or None.

    Read through the recorder's call table, so a graph and a recording name
    the same calls the same way (``x.relu()`` is the Tensor method).
    """
    if node.op == "call_function":
        target: Any = node.target
    elif node.op == "call_method":
        target = getattr(torch.Tensor, str(node.target), None)
    else:
        return None
    args = tuple(a if not isinstance(a, torch.fx.Node) else None for a in node.args)
    call = parse_call(target, args, dict(node.kwargs))
    return call.function if call is not None else None


def _innermost_module(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def site_nodes(
    gm: torch.fx.GraphModule, *, prefix: str = "", caller: str | None = None
) -> dict[tuple[str, str | None], list[torch.fx.Node]]:
    """Activation nodes by (module, function), in graph order: the recorder's site order.

    ``prefix`` is the traced module's path in the model (its children's paths
    get it); ``caller`` is the module whose code makes the functional calls
    (None: read from each node's module stack, as a whole-model trace keeps).
    """
    nodes: dict[tuple[str, str | None], list[torch.fx.Node]] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            if module_kind(gm.get_submodule(str(node.target))) is not None:
                nodes.setdefault((prefix + str(node.target), None), []).append(node)
        else:
            function = called_function(node)
            if function is not None:
                where = caller if caller is not None else _innermost_module(node)
                nodes.setdefault((where, function), []).append(node)
    return nodes


def occurrence_problem(found: int, occurrences: int, where: str = "its code") -> str | None:
    """Why a site's nodes cannot be trusted to be the calls that ran, or None when they can."""
    if found == occurrences:
        return None
    return f"{where} makes {found} such call(s) but {occurrences} ran per pass"


def trace_problem(error: BaseException) -> str:
    """An exception from tracing, in a few words: ``TypeError: first line``."""
    first = str(error).splitlines()[0][:120] if str(error) else ""
    return f"{type(error).__name__}: {first}"


def replace_everywhere(model: nn.Module, old: nn.Module, new: nn.Module) -> nn.Module:
    """Put ``new`` wherever the model holds ``old`` (a module may sit under several names).

    Returns the model, or ``new`` when ``old`` is the model itself. Where it is
    held is found before anything changes, since ``new`` may hold ``old``.
    """
    if model is old:
        return new
    holders = [
        (module, name)
        for module in model.modules()
        for name, child in module._modules.items()
        if child is old
    ]
    for module, name in holders:
        setattr(module, name, new)
    return model
