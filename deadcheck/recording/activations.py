"""The torch entry points of the ReLU family, each bound to its kind in :mod:`deadcheck.core.kinds`.

Two tables, one per call form, the way timm's ``create_act`` looks activations
up by name:

* :data:`CALLS`: every function and method torch passes to
  ``__torch_function__`` for the family (18 names, in-place forms included;
  ``F.prelu``, ``F.relu_`` and ``F.rrelu_`` are torch's own, so 15 objects),
  each with a parser that reads its slope from the call's arguments;
* :data:`MODULE_KINDS`: the module classes, each with the kind it is; a module's
  slope is read from the module.

The recorder and the swap look calls up here and nowhere else, so supporting a
new function is one row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deadcheck.core.kinds import FAMILY, kind

__all__ = [
    "CALLS",
    "COMPOSITE_KINDS",
    "MODULE_KINDS",
    "ActivationCall",
    "ModuleCalls",
    "is_family_module",
    "module_call",
    "module_kind",
    "parse_call",
]


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


def _call(
    name: str, slope: float | torch.Tensor | None = None, axis: int | None = None
) -> ActivationCall:
    row = kind(name)
    return ActivationCall(row.name, row.function, slope, row.saturate_at, axis)


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


_Parser = Callable[[tuple[Any, ...], dict[str, Any]], "ActivationCall | None"]


def _fixed(name: str) -> _Parser:
    call = _call(name)
    return lambda args, kwargs: call


def _leaky(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
    return _call("LeakyReLU", float(_arg(args, kwargs, 1, "negative_slope", 0.01)))


def _prelu(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
    return _call("PReLU", _arg(args, kwargs, 1, "weight", None))


def _rrelu(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall:
    lower = float(_arg(args, kwargs, 1, "lower", 1.0 / 8))
    upper = float(_arg(args, kwargs, 2, "upper", 1.0 / 3))
    # In eval mode RReLU uses the midpoint; it is the slope a user should judge.
    return _call("RReLU", (lower + upper) / 2)


def _hardtanh(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall | None:
    # nn.ReLU6 reaches torch as hardtanh(x, 0, 6); other hardtanh calls are not ReLUs.
    low = _arg(args, kwargs, 1, "min_val", -1.0)
    high = _arg(args, kwargs, 2, "max_val", 1.0)
    return _call("ReLU6") if (low, high) == (0.0, 6.0) else None


#: Every entry point of the family, keyed by the object torch passes to
#: ``__torch_function__``. In-place forms report under the plain name.
CALLS: dict[Any, _Parser] = {
    **dict.fromkeys(
        (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_),
        _fixed("ReLU"),
    ),
    F.relu6: _fixed("ReLU6"),
    F.hardtanh: _hardtanh,
    F.hardtanh_: _hardtanh,
    F.leaky_relu: _leaky,
    F.leaky_relu_: _leaky,
    **dict.fromkeys((F.prelu, torch.prelu, torch.Tensor.prelu), _prelu),
    **dict.fromkeys((F.rrelu, F.rrelu_, torch.rrelu, torch.rrelu_), _rrelu),
    # Beyond the family (activations="all"). Bare torch.tanh / torch.sigmoid calls are
    # left out: in forward code they are gates and squashes (LSTM-style cells, attention
    # scales), not a layer's units; nn.Tanh and nn.Sigmoid modules count.
    F.gelu: _fixed("GELU"),
    F.silu: _fixed("SiLU"),
    F.mish: _fixed("Mish"),
    **dict.fromkeys((F.elu, F.elu_), _fixed("ELU")),
    **dict.fromkeys((F.celu, F.celu_), _fixed("CELU")),
    **dict.fromkeys((F.selu, F.selu_, torch.selu, torch.selu_), _fixed("SELU")),
    F.hardswish: _fixed("Hardswish"),
    F.softplus: _fixed("Softplus"),
}

# torch's C entry points, called directly by some code, take the same arguments.
_C_NN = torch._C._nn
for _name, _parser in (
    ("leaky_relu", _leaky),
    ("leaky_relu_", _leaky),
    ("relu6", _fixed("ReLU6")),
    ("relu6_", _fixed("ReLU6")),
    ("hardtanh", _hardtanh),
    ("hardtanh_", _hardtanh),
    ("gelu", _fixed("GELU")),
    ("silu", _fixed("SiLU")),
    ("mish", _fixed("Mish")),
    ("elu", _fixed("ELU")),
    ("hardswish", _fixed("Hardswish")),
    ("softplus", _fixed("Softplus")),
):
    if hasattr(_C_NN, _name):
        CALLS.setdefault(getattr(_C_NN, _name), _parser)

# ATen operators, as graphs from torch.export and torch.fx's aten tracing call them
# (the function mode sees each ``torch.ops.aten.X.default`` call).
_ATEN = torch.ops.aten
for _name, _parser in (
    ("relu", _fixed("ReLU")),
    ("relu_", _fixed("ReLU")),
    ("relu6", _fixed("ReLU6")),
    ("hardtanh", _hardtanh),
    ("hardtanh_", _hardtanh),
    ("leaky_relu", _leaky),
    ("leaky_relu_", _leaky),
    ("prelu", _prelu),
    ("_prelu_kernel", _prelu),
    ("rrelu", _rrelu),
    ("gelu", _fixed("GELU")),
    ("silu", _fixed("SiLU")),
    ("silu_", _fixed("SiLU")),
    ("mish", _fixed("Mish")),
    ("elu", _fixed("ELU")),
    ("celu", _fixed("CELU")),
    ("selu", _fixed("SELU")),
    ("hardswish", _fixed("Hardswish")),
    ("softplus", _fixed("Softplus")),
):
    with contextlib.suppress(AttributeError, RuntimeError):  # an operator torch lacks
        CALLS.setdefault(getattr(_ATEN, _name).default, _parser)


def _module_slope(module: nn.Module) -> float | torch.Tensor | None:
    if isinstance(module, nn.LeakyReLU):
        return float(module.negative_slope)
    if isinstance(module, nn.PReLU):
        return module.weight
    if isinstance(module, nn.RReLU):
        return (module.lower + module.upper) / 2
    return None


#: Module classes of the family, mapped to their kind. Subclasses count too
#: (looked up along the MRO); a module's slope is read from the module.
MODULE_KINDS: dict[type[nn.Module], str] = {
    nn.ReLU: "ReLU",
    nn.ReLU6: "ReLU6",
    nn.LeakyReLU: "LeakyReLU",
    nn.PReLU: "PReLU",
    nn.RReLU: "RReLU",
    nn.GELU: "GELU",
    nn.SiLU: "SiLU",
    nn.Mish: "Mish",
    nn.ELU: "ELU",
    nn.CELU: "CELU",
    nn.SELU: "SELU",
    nn.Hardswish: "Hardswish",
    nn.Softplus: "Softplus",
    nn.Tanh: "Tanh",
    nn.Sigmoid: "Sigmoid",
}


#: Activation modules of other libraries, by (module, class name): the ones whose
#: forward computes the activation from other ops (GPT-2's ``gelu_new`` is a tanh
#: formula, CLIP's ``quick_gelu`` x * sigmoid(1.702 x)), so no call of ours shows it.
#: Matched by name, so the libraries are never imported.
COMPOSITE_KINDS: dict[tuple[str, str], str] = {
    **{
        ("transformers.activations", name): kind_name
        for name, kind_name in (
            ("NewGELUActivation", "GELU"),
            ("GELUActivation", "GELU"),
            ("FastGELUActivation", "GELU"),
            ("QuickGELUActivation", "GELU"),
            ("ClippedGELUActivation", "GELU"),
            ("AccurateGELUActivation", "GELU"),
            ("GELUTanh", "GELU"),
            ("PytorchGELUTanh", "GELU"),
            ("SiLUActivation", "SiLU"),
            ("MishActivation", "Mish"),
        )
    },
    **{
        (module, name): kind_name
        for module in ("timm.layers.activations", "timm.layers.activations_me")
        for name, kind_name in (
            ("Swish", "SiLU"),
            ("SwishMe", "SiLU"),
            ("Mish", "Mish"),
            ("MishMe", "Mish"),
            ("HardSwish", "Hardswish"),
            ("HardSwishMe", "Hardswish"),
            ("GELU", "GELU"),
            ("GELUTanh", "GELU"),
            ("QuickGELU", "GELU"),
            ("Sigmoid", "Sigmoid"),
            ("Tanh", "Tanh"),
        )
    },
}


def parse_call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActivationCall | None:
    """What a call of ``func`` with these arguments is, if it is one of the family's (else None).

    The one lookup of :data:`CALLS` for code that holds a callable (a graph
    node's target, a stored function, a function mode's ``func``); the
    recorder's own mode inlines it, as it runs for every torch call.
    """
    try:
        parser = CALLS.get(func)
    except TypeError:  # an unhashable callable: not one of ours
        return None
    return parser(args, kwargs) if parser is not None else None


def module_kind(module: nn.Module) -> str | None:
    """The kind of an activation module instance, or None.

    ``nn.Hardtanh(0, 6)`` is ReLU6 by another name; other Hardtanh ranges are
    not ReLUs.
    """
    mro = type(module).__mro__
    for cls in mro:
        name = MODULE_KINDS.get(cls)  # type: ignore[call-overload]
        if name is not None:
            return name
    if isinstance(module, nn.Hardtanh):
        return "ReLU6" if (module.min_val, module.max_val) == (0.0, 6.0) else None
    for cls in mro:
        name = COMPOSITE_KINDS.get((cls.__module__, cls.__name__))
        if name is not None:
            return name
    return None


def is_family_module(module: nn.Module, kinds: frozenset[str] = FAMILY) -> bool:
    """True for an activation module of one of ``kinds`` (default: the ReLU family)."""
    return module_kind(module) in kinds


def module_call(module: nn.Module) -> ActivationCall:
    """What calling an activation module amounts to: its kind and slope, read from the module."""
    return _call(
        module_kind(module) or "ReLU", _module_slope(module), getattr(module, "axis", None)
    )


class ModuleCalls:
    """:func:`module_call` per module, kept while what it is read from stays the same.

    A recorder asks on every call of every activation module, and reading the
    kind along the class's MRO and the slope from the module took about 3 µs a
    call, which small layers feel. The kept answer is checked against the
    module's class and the attributes the answer is read from (a LeakyReLU's
    ``negative_slope``, a PReLU's weight, a Hardtanh's range, an ``axis``), so
    a slope changed during training or a weight replaced is read again.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[tuple[object, ...], ActivationCall]] = {}

    @staticmethod
    def _fingerprint(module: nn.Module) -> tuple[object, ...]:
        own = module.__dict__
        weight = own["_parameters"].get("weight")
        return (
            type(module),
            own.get("negative_slope"),
            None if weight is None else id(weight),  # the kept call holds the weight alive
            own.get("axis"),
            own.get("min_val"),
            own.get("max_val"),
            own.get("lower"),
            own.get("upper"),
        )

    def __call__(self, module: nn.Module) -> ActivationCall:
        fingerprint = self._fingerprint(module)
        known = self._known.get(id(module))
        if known is not None and known[0] == fingerprint:
            return known[1]
        call = module_call(module)
        self._known[id(module)] = (fingerprint, call)
        return call
