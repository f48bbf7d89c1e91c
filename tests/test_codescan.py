"""The function mode is off only in modules whose code provably calls no activation function.

Every way of reaching F.relu below must still be counted, exactly; the blocks
of real architectures that cannot reach it must run without the mode.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.functional import relu as aliased_relu

import deadcheck
from deadcheck.recording.codescan import closed, model_names

ACTS = {"relu": F.relu}


def helper(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x)


library = types.ModuleType("library")
library.block = helper  # type: ignore[attr-defined]


class Base(nn.Module):
    """Holds a Linear whose unit 0 is dead (bias -100) and unit 1 always fires."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 4)
        with torch.no_grad():
            self.lin.weight.zero_()
            self.lin.bias.copy_(torch.tensor([-100.0, 100.0, 1.0, -1.0]))


def case(body: Callable[..., torch.Tensor], **attrs: object) -> Callable[[], nn.Module]:
    """A Base whose forward is ``body(self, x)``, with extra attributes set on it."""

    def build() -> nn.Module:
        cls = type("Case", (Base,), {"forward": lambda self, x: body(self, x)})
        module = cls()
        for name, value in attrs.items():
            setattr(module, name, value)
        return module

    return build


class Helped(Base):
    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class Static(Base):
    @staticmethod
    def act(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class Property(Base):
    @property
    def act(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return F.relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.lin(x))


class Parent(Base):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.lin(x))


class Child(Parent):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 1.0


class Gadget:
    def go(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class Special(nn.Module):
    def special(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class Nested(Base):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def inner(y: torch.Tensor) -> torch.Tensor:
            return F.relu(y)

        return inner(self.lin(x))


class Comprehension(Base):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return next(F.relu(t) for t in [self.lin(x)])


class Default(Base):
    def forward(self, x: torch.Tensor, act: Callable = F.relu) -> torch.Tensor:
        return act(self.lin(x))


def wrapped(forward: Callable) -> Callable:
    @functools.wraps(forward)
    def call(*args: object) -> torch.Tensor:
        return forward(*args)

    return call


class Decorated(Base):
    @wrapped
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.lin(x))


class HandedIn(Base):
    def forward(self, x: torch.Tensor, act: Callable) -> torch.Tensor:
        return act(self.lin(x))


WATCHED = [
    ("F.relu", case(lambda self, x: F.relu(self.lin(x)))),
    ("torch.relu", case(lambda self, x: torch.relu(self.lin(x)))),
    ("tensor-method", case(lambda self, x: self.lin(x).relu())),
    ("aliased-import", case(lambda self, x: aliased_relu(self.lin(x)))),
    ("global-helper", case(lambda self, x: helper(self.lin(x)))),
    ("helper-in-a-module", case(lambda self, x: library.block(self.lin(x)))),
    ("method", Helped),
    ("staticmethod", Static),
    ("property", Property),
    ("function-attribute", case(lambda self, x: self.act(self.lin(x)), act=F.relu)),
    (
        "partial-attribute",
        case(lambda self, x: self.act(self.lin(x)), act=functools.partial(F.leaky_relu)),
    ),
    ("lambda-attribute", case(lambda self, x: self.act(self.lin(x)), act=lambda t: t.relu())),
    ("inline-module", case(lambda self, x: nn.ReLU()(self.lin(x)))),
    ("getattr", case(lambda self, x: getattr(F, "relu")(self.lin(x)))),  # noqa: B009
    ("global-dict", case(lambda self, x: ACTS["relu"](self.lin(x)))),
    ("nested-function", Nested),
    ("comprehension", Comprehension),
    ("default-argument", Default),
    ("super-forward", Child),
    ("object-attribute", case(lambda self, x: self.gadget.go(self.lin(x)), gadget=Gadget())),
    (
        "submodule-method",
        case(lambda self, x: self.sub.special(self.lin(x)), sub=Special()),
    ),
    ("decorated-forward", Decorated),
]


@pytest.mark.parametrize("build", [c[1] for c in WATCHED], ids=[c[0] for c in WATCHED])
def test_every_way_to_reach_an_activation_keeps_the_mode_on_and_is_counted(build) -> None:
    model = build()
    assert not closed(model, model_names(model.modules()))
    x = torch.randn(5, 3)
    with deadcheck.record(model) as rec:
        model(x)
        model(x)
    site = next(s for s in rec.stats().sites if s.module == "")
    assert site.positions == 10
    assert site.zeros[:2] == (10, 0)  # the planted dead unit, and the one that always fires


def test_a_callable_handed_to_a_closed_module_is_counted() -> None:
    model = HandedIn()
    assert closed(model, model_names(model.modules()))  # its code names no activation
    with deadcheck.record(model) as rec:
        model(torch.randn(5, 3), F.relu)
        model(torch.randn(5, 3), act=F.relu)
    (site,) = rec.stats().sites
    assert (site.positions, site.zeros[:2]) == (10, (10, 0))


class HandedObject(Base):
    def forward(self, x: torch.Tensor, gadget: Gadget) -> torch.Tensor:
        return gadget.go(self.lin(x))


def test_an_object_handed_to_a_closed_module_is_counted() -> None:
    """Not a callable, but its methods may call F.relu: the mode is on for that call."""
    model = HandedObject()
    with deadcheck.record(model) as rec:
        model(torch.randn(5, 3), Gadget())
        model(torch.randn(5, 3), gadget=Gadget())
    (site,) = rec.stats().sites
    assert (site.positions, site.zeros[:2]) == (10, (10, 0))


def test_an_instance_forward_keeps_the_mode_on() -> None:
    model = Base()
    model.forward = lambda x: F.relu(model.lin(x))  # type: ignore[method-assign]
    assert not closed(model, model_names(model.modules()))


class FFN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm, self.up, self.act, self.down = (
            nn.LayerNorm(8),
            nn.Linear(8, 16),
            nn.ReLU(),
            nn.Linear(16, 8),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.act(self.up(self.norm(x))))


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 8)
        self.blocks = nn.ModuleList(FFN() for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return F.linear(x, self.embed.weight)


CLOSED = [
    ("resnet18", lambda: torchvision.models.resnet18(), (2, 3, 32, 32)),
    ("resnet50", lambda: torchvision.models.resnet50(), (2, 3, 32, 32)),
    ("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(), (2, 3, 32, 32)),
    ("ffn", FFN, (2, 5, 8)),
    ("tied-weights-and-a-module-list", Tied, (2, 5, 8)),
]


@pytest.mark.parametrize(("build", "shape"), [c[1:] for c in CLOSED], ids=[c[0] for c in CLOSED])
def test_blocks_that_cannot_reach_an_activation_run_without_the_mode(build, shape) -> None:
    """After their first, watched call, no torch call inside them passes through the mode.

    Pass 3 is neither a first call nor an audit pass (1, 2, 4, ...); the stats
    equal those of a recorder that watches every module.
    """
    model = build().eval()
    names = model_names(model.modules())
    own_code = [m for m in model.modules() if not type(m).__module__.startswith("torch.")]
    assert own_code and all(closed(m, names) for m in own_code)
    modes: list[int] = []
    probes = [
        m.register_forward_pre_hook(
            lambda *_: modes.append(len(torch.overrides._get_current_function_mode_stack()))
        )
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    x = torch.randn(shape)
    try:
        with torch.no_grad(), deadcheck.record(model) as rec:
            model(x)
            model(x)
            modes.clear()
            model(x)
    finally:
        for probe in probes:
            probe.remove()
    assert modes and set(modes) == {0}
    watched = deadcheck.Recorder(model, scoped=False)
    with torch.no_grad(), watched:
        for _ in range(3):
            model(x)
    assert rec.stats().to_dict() == watched.stats().to_dict()
    assert rec.stats().sites


def test_torchs_transformer_layer_keeps_the_mode_on() -> None:
    """TransformerEncoderLayer calls its stored F.relu: it is watched, and counted."""
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    assert not closed(layer, model_names(layer.modules()))
    with deadcheck.record(layer) as rec:
        layer(torch.randn(4, 2, 8))
    assert [s.kind for s in rec.stats().sites] == ["ReLU"]
