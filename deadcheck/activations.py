"""The ReLU family: which calls and modules deadcheck watches, and what each one means.

One table maps every torch entry point of the family to a parser that reads the
call's arguments (the slope of a LeakyReLU, the saturation point of a ReLU6). The
recorder looks a call up here and nowhere else, so supporting a new function is a
one-line change, the way timm's ``create_act`` looks activations up by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MODULE_KINDS",
    "ActivationCall",
    "is_family_module",
    "module_call",
    "module_kind",
    "parse_call",
]

#: Module classes of the family, mapped to the kind name used in reports.
#: Subclasses count too (looked up along the MRO).
MODULE_KINDS: dict[type[nn.Module], str] = {
    nn.ReLU: "ReLU",
    nn.ReLU6: "ReLU6",
    nn.LeakyReLU: "LeakyReLU",
    nn.PReLU: "PReLU",
    nn.RReLU: "RReLU",
}

#: Kinds whose negative regime passes no gradient at all.
HARD_ZERO_KINDS = frozenset({"ReLU", "ReLU6"})


@dataclass(frozen=True)
class ActivationCall:
    """What one intercepted call is: its kind, the function's short name, its slope."""

    kind: str
    function: str
    #: A float for a shared slope, a tensor (PReLU weight) for a learned one, None for ReLU.
    slope: float | torch.Tensor | None = None
    #: Upper clip (6 for ReLU6): outputs there have zero gradient too.
    saturate_at: float | None = None
    #: The axis a per-unit PReLU weight acts on (torch's own: 1; AxisPReLU's: its own).
    axis: int | None = None


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _relu(fn: str) -> Callable[[tuple[Any, ...], dict[str, Any]], ActivationCall]:
    call = ActivationCall("ReLU", fn)
    return lambda args, kwargs: call


def _relu6(fn: str) -> Callable[[tuple[Any, ...], dict[str, Any]], ActivationCall]:
    call = ActivationCall("ReLU6", fn, saturate_at=6.0)
    return lambda args, kwargs: call


def _leaky(fn: str) -> Callable[[tuple[Any, ...], dict[str, Any]], ActivationCall]:
    def parse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
        slope = _arg(args, kwargs, 1, "negative_slope", 0.01)
        return ActivationCall("LeakyReLU", fn, slope=float(slope))

    return parse


def _prelu(fn: str) -> Callable[[tuple[Any, ...], dict[str, Any]], ActivationCall]:
    def parse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
        weight = _arg(args, kwargs, 1, "weight", None)
        return ActivationCall("PReLU", fn, slope=weight)

    return parse


def _rrelu(fn: str) -> Callable[[tuple[Any, ...], dict[str, Any]], ActivationCall]:
    def parse(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
        lower = float(_arg(args, kwargs, 1, "lower", 1.0 / 8))
        upper = float(_arg(args, kwargs, 2, "upper", 1.0 / 3))
        # In eval mode RReLU uses the midpoint; it is the slope a user should judge.
        return ActivationCall("RReLU", fn, slope=(lower + upper) / 2)

    return parse


def _hardtanh(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall | None:
    # nn.ReLU6 reaches torch as hardtanh(x, 0, 6); other hardtanh calls are not ReLUs.
    low = _arg(args, kwargs, 1, "min_val", -1.0)
    high = _arg(args, kwargs, 2, "max_val", 1.0)
    if low == 0.0 and high == 6.0:
        return ActivationCall("ReLU6", "relu6", saturate_at=6.0)
    return None


_Parser = Callable[[tuple[Any, ...], dict[str, Any]], "ActivationCall | None"]

#: Every entry point of the family, keyed by the object torch passes to
#: ``__torch_function__``. In-place forms report under the plain name.
CALLS: dict[Any, _Parser] = {
    F.relu: _relu("relu"),
    F.relu_: _relu("relu"),
    torch.relu: _relu("relu"),
    torch.relu_: _relu("relu"),
    torch.Tensor.relu: _relu("relu"),
    torch.Tensor.relu_: _relu("relu"),
    F.relu6: _relu6("relu6"),
    F.hardtanh: _hardtanh,
    F.hardtanh_: _hardtanh,
    F.leaky_relu: _leaky("leaky_relu"),
    F.leaky_relu_: _leaky("leaky_relu"),
    F.prelu: _prelu("prelu"),
    torch.prelu: _prelu("prelu"),
    torch.Tensor.prelu: _prelu("prelu"),
    F.rrelu: _rrelu("rrelu"),
    F.rrelu_: _rrelu("rrelu"),
    torch.rrelu: _rrelu("rrelu"),
    torch.rrelu_: _rrelu("rrelu"),
}


def parse_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall | None:
    """Return what ``func(*args, **kwargs)`` is, or None when it is not a ReLU-family call."""
    parser = CALLS.get(func)
    if parser is None:
        return None
    return parser(args, kwargs)


def module_kind(module: nn.Module) -> str | None:
    """The family kind of a module instance, or None."""
    for cls in type(module).__mro__:
        kind = MODULE_KINDS.get(cls)  # type: ignore[call-overload]
        if kind is not None:
            return kind
    return None


def is_family_module(module: nn.Module) -> bool:
    """True for nn.ReLU, ReLU6, LeakyReLU, PReLU, RReLU and their subclasses."""
    return module_kind(module) is not None


def module_call(module: nn.Module) -> ActivationCall:
    """What calling an activation module amounts to: its kind and slope, read from the module."""
    if isinstance(module, nn.ReLU6):
        return ActivationCall("ReLU6", "relu6", saturate_at=6.0)
    if isinstance(module, nn.LeakyReLU):
        return ActivationCall("LeakyReLU", "leaky_relu", slope=float(module.negative_slope))
    if isinstance(module, nn.PReLU):
        axis = getattr(module, "axis", None)
        return ActivationCall("PReLU", "prelu", slope=module.weight, axis=axis)
    if isinstance(module, nn.RReLU):
        return ActivationCall("RReLU", "rrelu", slope=(module.lower + module.upper) / 2)
    return ActivationCall("ReLU", "relu")
