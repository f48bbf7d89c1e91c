"""The activation table: every call form is recorded as its kind, with exact counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from deadcheck.core.kinds import KINDS, kind
from deadcheck.recording.activations import CALLS, MODULE_KINDS, module_call
from tests.helpers import Functional

# x has, per unit (the last axis), these positives: unit 0 none, unit 1 one, unit 2 all three.
X = torch.tensor([[-1.0, 2.0, 3.0], [-2.0, -1.0, 1.0], [0.0, -3.0, 4.0]])
ZEROS = (3, 2, 0)
W = torch.tensor([0.25])

#: Each of the 18 entry points: how to call it, the kind and function name deadcheck reports,
#: and the slope it reads.
FORMS: dict[str, tuple[Any, Callable[[torch.Tensor], Any], str, str, Any]] = {
    "F.relu": (F.relu, F.relu, "ReLU", "relu", None),
    "F.relu_": (F.relu_, lambda x: F.relu_(x.clone()), "ReLU", "relu", None),
    "torch.relu": (torch.relu, torch.relu, "ReLU", "relu", None),
    "torch.relu_": (torch.relu_, lambda x: torch.relu_(x.clone()), "ReLU", "relu", None),
    "Tensor.relu": (torch.Tensor.relu, lambda x: x.relu(), "ReLU", "relu", None),
    "Tensor.relu_": (torch.Tensor.relu_, lambda x: x.clone().relu_(), "ReLU", "relu", None),
    "F.relu6": (F.relu6, F.relu6, "ReLU6", "relu6", None),
    "F.hardtanh(0, 6)": (F.hardtanh, lambda x: F.hardtanh(x, 0.0, 6.0), "ReLU6", "relu6", None),
    "F.hardtanh_(0, 6)": (
        F.hardtanh_,
        lambda x: F.hardtanh_(x.clone(), 0.0, 6.0),
        "ReLU6",
        "relu6",
        None,
    ),
    "F.leaky_relu": (F.leaky_relu, lambda x: F.leaky_relu(x, 0.2), "LeakyReLU", "leaky_relu", 0.2),
    "F.leaky_relu_": (
        F.leaky_relu_,
        lambda x: F.leaky_relu_(x.clone(), 0.2),
        "LeakyReLU",
        "leaky_relu",
        0.2,
    ),
    "F.prelu": (F.prelu, lambda x: F.prelu(x, W), "PReLU", "prelu", 0.25),
    "torch.prelu": (torch.prelu, lambda x: torch.prelu(x, W), "PReLU", "prelu", 0.25),
    "Tensor.prelu": (torch.Tensor.prelu, lambda x: x.prelu(W), "PReLU", "prelu", 0.25),
    "F.rrelu": (F.rrelu, lambda x: F.rrelu(x, 0.1, 0.3), "RReLU", "rrelu", 0.2),
    "F.rrelu_": (F.rrelu_, lambda x: F.rrelu_(x.clone(), 0.1, 0.3), "RReLU", "rrelu", 0.2),
    "torch.rrelu": (torch.rrelu, lambda x: torch.rrelu(x, 0.1, 0.3), "RReLU", "rrelu", 0.2),
    "torch.rrelu_": (
        torch.rrelu_,
        lambda x: torch.rrelu_(x.clone(), 0.1, 0.3),
        "RReLU",
        "rrelu",
        0.2,
    ),
}


#: The entry points beyond the family, recorded with activations="all" (dormant statistics).
BEYOND: dict[str, tuple[Any, Callable[[torch.Tensor], Any], str]] = {
    "F.gelu": (F.gelu, F.gelu, "GELU"),
    "F.silu": (F.silu, F.silu, "SiLU"),
    "F.mish": (F.mish, F.mish, "Mish"),
    "F.elu": (F.elu, F.elu, "ELU"),
    "F.elu_": (F.elu_, lambda x: F.elu_(x.clone()), "ELU"),
    "F.celu": (F.celu, F.celu, "CELU"),
    "F.celu_": (F.celu_, lambda x: F.celu_(x.clone()), "CELU"),
    "F.selu": (F.selu, F.selu, "SELU"),
    "F.selu_": (F.selu_, lambda x: F.selu_(x.clone()), "SELU"),
    "torch.selu": (torch.selu, torch.selu, "SELU"),
    "torch.selu_": (torch.selu_, lambda x: torch.selu_(x.clone()), "SELU"),
    "F.hardswish": (F.hardswish, F.hardswish, "Hardswish"),
    "F.softplus": (F.softplus, F.softplus, "Softplus"),
}


_C = torch._C._nn
_A = torch.ops.aten

#: torch's C entry points and the ATen operators (as torch.export graphs call them):
#: the entry, how to call it, the kind, and whether it is recorded by default.
LOW_LEVEL: dict[str, tuple[Any, Callable[[torch.Tensor], Any], str, bool]] = {
    "_C._nn.leaky_relu": (_C.leaky_relu, lambda x: _C.leaky_relu(x, 0.2), "LeakyReLU", True),
    "_C._nn.leaky_relu_": (
        _C.leaky_relu_,
        lambda x: _C.leaky_relu_(x.clone(), 0.2),
        "LeakyReLU",
        True,
    ),
    "_C._nn.relu6": (_C.relu6, _C.relu6, "ReLU6", True),
    "_C._nn.relu6_": (_C.relu6_, lambda x: _C.relu6_(x.clone()), "ReLU6", True),
    "_C._nn.hardtanh(0, 6)": (_C.hardtanh, lambda x: _C.hardtanh(x, 0.0, 6.0), "ReLU6", True),
    "_C._nn.hardtanh_(0, 6)": (
        _C.hardtanh_,
        lambda x: _C.hardtanh_(x.clone(), 0.0, 6.0),
        "ReLU6",
        True,
    ),
    "_C._nn.gelu": (_C.gelu, _C.gelu, "GELU", False),
    "_C._nn.silu": (_C.silu, _C.silu, "SiLU", False),
    "_C._nn.mish": (_C.mish, _C.mish, "Mish", False),
    "_C._nn.elu": (_C.elu, _C.elu, "ELU", False),
    "_C._nn.hardswish": (_C.hardswish, _C.hardswish, "Hardswish", False),
    "_C._nn.softplus": (_C.softplus, _C.softplus, "Softplus", False),
    "aten.relu": (_A.relu.default, _A.relu.default, "ReLU", True),
    "aten.relu_": (_A.relu_.default, lambda x: _A.relu_.default(x.clone()), "ReLU", True),
    "aten.relu6": (_A.relu6.default, _A.relu6.default, "ReLU6", True),
    "aten.hardtanh(0, 6)": (
        _A.hardtanh.default,
        lambda x: _A.hardtanh.default(x, 0.0, 6.0),
        "ReLU6",
        True,
    ),
    "aten.hardtanh_(0, 6)": (
        _A.hardtanh_.default,
        lambda x: _A.hardtanh_.default(x.clone(), 0.0, 6.0),
        "ReLU6",
        True,
    ),
    "aten.leaky_relu": (
        _A.leaky_relu.default,
        lambda x: _A.leaky_relu.default(x, 0.2),
        "LeakyReLU",
        True,
    ),
    "aten.leaky_relu_": (
        _A.leaky_relu_.default,
        lambda x: _A.leaky_relu_.default(x.clone(), 0.2),
        "LeakyReLU",
        True,
    ),
    "aten.prelu": (_A.prelu.default, lambda x: _A.prelu.default(x, W), "PReLU", True),
    "aten._prelu_kernel": (
        _A._prelu_kernel.default,
        lambda x: _A._prelu_kernel.default(x, W),
        "PReLU",
        True,
    ),
    "aten.rrelu": (_A.rrelu.default, lambda x: _A.rrelu.default(x, 0.1, 0.3), "RReLU", True),
    "aten.gelu": (_A.gelu.default, _A.gelu.default, "GELU", False),
    "aten.silu": (_A.silu.default, _A.silu.default, "SiLU", False),
    "aten.silu_": (_A.silu_.default, lambda x: _A.silu_.default(x.clone()), "SiLU", False),
    "aten.mish": (_A.mish.default, _A.mish.default, "Mish", False),
    "aten.elu": (_A.elu.default, _A.elu.default, "ELU", False),
    "aten.celu": (_A.celu.default, _A.celu.default, "CELU", False),
    "aten.selu": (_A.selu.default, _A.selu.default, "SELU", False),
    "aten.hardswish": (_A.hardswish.default, _A.hardswish.default, "Hardswish", False),
    "aten.softplus": (_A.softplus.default, _A.softplus.default, "Softplus", False),
}


def test_every_row_of_the_call_table_has_a_case() -> None:
    # 18 family names, 15 objects: F.prelu, F.relu_ and F.rrelu_ are torch's own functions.
    assert len(FORMS) == 18
    family = {entry for entry, *_ in FORMS.values()}
    beyond = {entry for entry, *_ in BEYOND.values()}
    low = {entry for entry, *_ in LOW_LEVEL.values()}
    assert len(family) == 15 and not family & beyond
    assert family | beyond | low == set(CALLS)


@pytest.mark.parametrize("form", sorted(LOW_LEVEL))
def test_low_level_entry_points_are_sites_of_their_kind(form: str) -> None:
    _, fn, kind_name, by_default = LOW_LEVEL[form]
    model = Functional(fn).eval()
    with (
        torch.no_grad(),
        deadcheck.record(model, activations="relu" if by_default else "all") as rec,
    ):
        model(X.clone())
    (site,) = rec.stats().sites
    assert (site.kind, site.function) == (kind_name, KINDS[kind_name].function)
    assert site.positions == 3
    if by_default:
        assert site.zeros == ZEROS


@pytest.mark.parametrize("form", sorted(BEYOND))
def test_calls_beyond_the_family_are_sites_only_under_all(form: str) -> None:
    _, fn, kind_name = BEYOND[form]
    model = Functional(fn).eval()
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(X.clone())
    assert rec.stats().sites == ()  # the default records the ReLU family only
    with torch.no_grad(), deadcheck.record(model, activations="all") as rec:
        out = model(X.clone())
    (site,) = rec.stats().sites
    assert (site.kind, site.function, site.family) == (kind_name, KINDS[kind_name].function, False)
    assert site.dead_units == ()  # "dead" is a ReLU-family notion
    expected = out.abs().double().sum(0) / 3
    assert site.mean_abs == pytest.approx(expected.tolist(), rel=1e-6)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_each_call_form_is_recorded_as_its_kind(form: str) -> None:
    _, fn, kind_name, function, slope = FORMS[form]
    model = Functional(fn).eval()
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(X.clone())
    (site,) = rec.stats().sites
    assert (site.name, site.kind, site.function) == (f":{function}", kind_name, function)
    assert site.zeros == ZEROS and site.positions == 3
    assert site.slope == (pytest.approx(slope) if slope is not None else None)


def test_other_hardtanh_calls_are_not_sites() -> None:
    model = Functional(lambda x: F.hardtanh(x, -1.0, 1.0))
    with deadcheck.record(model) as rec:
        model(X)
    assert rec.stats().sites == ()


@pytest.mark.parametrize("module_class", sorted(MODULE_KINDS, key=lambda c: c.__name__))
def test_each_module_class_reads_its_kind_from_the_table(module_class: type[nn.Module]) -> None:
    call = module_call(module_class())
    row = kind(MODULE_KINDS[module_class])
    assert (call.kind, call.function, call.saturate_at) == (row.name, row.function, row.saturate_at)


def test_bare_tanh_and_sigmoid_calls_are_gates_not_sites() -> None:
    model = Functional(lambda x: torch.sigmoid(x) * torch.tanh(x))
    with deadcheck.record(model, activations="all") as rec:
        model(X)
    assert rec.stats().sites == ()
    modules = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3), nn.Sigmoid())
    with deadcheck.record(modules, activations="all") as rec:
        modules(X)
    assert [(s.name, s.kind) for s in rec.stats().sites] == [("1", "Tanh"), ("3", "Sigmoid")]


def test_kind_facts() -> None:
    assert {k.name for k in KINDS.values() if k.leaky} == {"LeakyReLU", "PReLU", "RReLU"}
    assert {k.name for k in KINDS.values() if k.family} == {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "PReLU",
        "RReLU",
    }
    assert {k.name for k in KINDS.values() if k.swappable} == {"ReLU"}
    assert {k.name: k.saturate_at for k in KINDS.values() if k.saturate_at} == {"ReLU6": 6.0}
    with pytest.raises(KeyError, match="kinds: ReLU, ReLU6"):
        kind("Swish")
