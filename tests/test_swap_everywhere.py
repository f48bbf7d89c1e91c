"""Swap reaches every ReLU site recording names: traced, held, or swapped at run time.

Each case swaps every site to LeakyReLU(0), which computes exactly what ReLU
does, so the swapped model's outputs must be ``torch.equal`` to the original's
and a recording of it must find no ReLU site left.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from deadcheck.core.errors import SwapError
from deadcheck.repair.calls import PerCall, SwappedCalls


class FlaggedAudio(nn.Module):
    """Conv → ReLU → BatchNorm → MaxPool blocks by a helper method, behind a defaulted flag."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(2 if i == 0 else 4, 4, 3, padding=1) for i in range(3))
        self.bns = nn.ModuleList(nn.BatchNorm1d(4) for _ in range(3))
        self.head = nn.Linear(4, 3)

    def layer(self, x: torch.Tensor, conv: nn.Module, bn: nn.Module) -> torch.Tensor:
        return F.max_pool1d(bn(F.relu(conv(x))), 2)

    def forward(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        for conv, bn in zip(self.convs, self.bns, strict=True):
            x = self.layer(x, conv, bn)
        pooled = x.mean(-1)
        if embed:
            return pooled
        return self.head(pooled)


class SharedModule(nn.Module):
    """One nn.ReLU called at two sites of different widths, in code that does not trace."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(4, 5)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e9:  # data-dependent control flow: fx cannot trace it
            return self.relu(self.b(self.relu(self.a(x))))
        return x


class InPlaceCalls(nn.Module):
    """Functional calls whose result is their input: the return value is ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        if h.sum() > -1e9:
            F.relu(h, inplace=True)
            g = self.fc(x)
            g.relu_()
            torch.relu_(h)
            return h + g
        return h


def _raft() -> tuple[nn.Module, Any]:
    import torchvision

    model = torchvision.models.optical_flow.raft_small(weights=None).eval()
    images = (torch.randn(1, 3, 128, 128), torch.randn(1, 3, 128, 128))
    return model, images


def _transformer() -> tuple[nn.Module, Any]:
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval(), torch.randn(2, 5, 8)


CASES: dict[str, Callable[[], tuple[nn.Module, Any]]] = {
    "defaulted-flag-and-helper-method": lambda: (FlaggedAudio().eval(), torch.randn(4, 2, 16)),
    "shared-module-untraced": lambda: (SharedModule(), torch.randn(6, 3)),
    "in-place-functional-calls": lambda: (InPlaceCalls(), torch.randn(6, 3)),
    "raft-small-root-relu": _raft,
    "transformer-encoder": _transformer,
}


def _run(model: nn.Module, inputs: Any) -> Any:
    with torch.no_grad():
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    return out[-1] if isinstance(out, list) else out


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_site_swaps_and_leaky_zero_computes_what_relu_did(case: str) -> None:
    torch.manual_seed(0)
    model, inputs = CASES[case]()
    before = copy.deepcopy(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no site may be left behind with a note
        plan = deadcheck.plan_swap(model, "leaky_relu", "all", example_inputs=inputs)
    assert plan.notes == ()
    recorded = [s.name for s in deadcheck.scan(model, [inputs]).sites if s.kind == "ReLU"]
    assert sorted(s.site for s in plan.sites) == sorted(recorded) and recorded
    swapped = deadcheck.swap(model, "leaky_relu", "all", negative_slope=0.0, example_inputs=inputs)
    assert torch.equal(_run(swapped, inputs), _run(model, inputs))
    after = deadcheck.scan(swapped, [inputs])
    assert [s.name for s in after.sites if s.kind == "ReLU"] == []
    assert len(after.sites) == len(recorded) + sum(
        1 for s in deadcheck.scan(model, [inputs]).sites if s.kind != "ReLU"
    )
    assert not after.incomplete and not after.partial
    assert deadcheck.scan(swapped, [inputs], scoped=False).sites == after.sites
    # The user's model is never changed.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert "forward" not in vars(model)


def test_the_flag_keeps_its_meaning_after_a_run_time_swap() -> None:
    torch.manual_seed(0)
    model, x = FlaggedAudio().eval(), torch.randn(4, 2, 16)
    plan = deadcheck.plan_swap(model, "leaky_relu", negative_slope=0.0, example_inputs=x)
    assert {(s.how, s.caller) for s in plan.sites} == {("call", "")}
    swapped = deadcheck.swap(model, plan=plan)
    assert torch.equal(swapped(x, embed=True), model(x, embed=True))
    assert swapped(x, embed=True).shape == (4, 4) and swapped(x).shape == (4, 3)
    # A slope that changes the outputs shows the swapped calls do run on both paths.
    leaky = deadcheck.swap(model, "leaky_relu", negative_slope=0.5, example_inputs=x)
    assert not torch.equal(leaky(x, embed=True), model(x, embed=True))


def test_prelu_at_run_time_swapped_calls_trains_saves_and_reloads_strictly() -> None:
    torch.manual_seed(0)
    model, x = FlaggedAudio(), torch.randn(4, 2, 16)
    plan = deadcheck.plan_swap(model, "prelu", example_inputs=x)
    assert [(s.site, s.how, s.new_site) for s in plan.sites] == [
        (":relu#0", "call", "relu_0"),
        (":relu#1", "call", "relu_1"),
        (":relu#2", "call", "relu_2"),
    ]
    swapped = deadcheck.swap(model, plan=plan)
    assert isinstance(vars(swapped)["forward"], SwappedCalls)
    slopes = [swapped.relu_0.weight, swapped.relu_1.weight, swapped.relu_2.weight]
    swapped(x).square().sum().backward()
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in slopes)
    with torch.no_grad():
        for i, w in enumerate(slopes):
            w.fill_(0.1 * (i + 1))
    fresh = deadcheck.swap(FlaggedAudio(), plan=deadcheck.SwapPlan.from_dict(plan.to_dict()))
    fresh.load_state_dict(swapped.state_dict(), strict=True)
    swapped.eval()
    fresh.eval()
    assert torch.equal(fresh(x), swapped(x))
    assert torch.equal(copy.deepcopy(swapped)(x), swapped(x))
    buffer = io.BytesIO()
    torch.save(swapped, buffer)
    buffer.seek(0)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), swapped(x))


def test_a_module_shared_by_sites_of_two_widths_gets_one_prelu_per_call() -> None:
    torch.manual_seed(0)
    model, x = SharedModule(), torch.randn(6, 3)
    plan = deadcheck.plan_swap(model, "prelu", example_inputs=x)
    assert [(s.site, s.how, s.new_site, s.num_parameters) for s in plan.sites] == [
        ("relu#0", "slots", "relu.slots.0", 4),
        ("relu#1", "slots", "relu.slots.1", 5),
    ]
    swapped = deadcheck.swap(model, plan=plan)
    assert isinstance(swapped.relu, PerCall)
    assert [(s.name, s.kind, s.units) for s in deadcheck.scan(swapped, [x]).sites] == [
        ("relu.slots.0", "PReLU", 4),
        ("relu.slots.1", "PReLU", 5),
    ]
    fresh = deadcheck.swap(SharedModule(), plan=plan)
    fresh.load_state_dict(swapped.state_dict(), strict=True)
    assert torch.equal(fresh(x), swapped(x))
    # Only the second call chosen: the first keeps the ReLU it was.
    one = deadcheck.swap(model, "prelu", sites=["relu#1"], init=0.0, example_inputs=x)
    assert torch.equal(one(x), model(x))
    assert [(s.name, s.kind) for s in deadcheck.scan(one, [x]).sites] == [
        ("relu.slots.0", "ReLU"),
        ("relu.slots.1", "PReLU"),
    ]


def test_only_the_callers_own_calls_are_swapped_not_its_childrens() -> None:
    class Child(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.relu(x)

    class Parent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.child = Child()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > -1e9:
                return F.relu(self.child(x) - 1) + F.relu(x - 2)
            return x

    model, x = Parent(), torch.randn(5, 3) * 3
    sites = [s.name for s in deadcheck.scan(model, [x]).sites]
    assert sites == ["child:relu", ":relu#0", ":relu#1"]
    swapped = deadcheck.swap(
        model, "leaky_relu", sites=[":relu#1"], negative_slope=0.5, example_inputs=x
    )
    expected = F.relu(F.relu(x) - 1) + F.leaky_relu(x - 2, 0.5)
    assert torch.equal(swapped(x), expected)
    assert [(s.name, s.kind) for s in deadcheck.scan(swapped, [x]).sites] == [
        ("child:relu", "ReLU"),
        (":relu", "ReLU"),
        ("relu_1", "LeakyReLU"),
    ]


@pytest.mark.parametrize(
    ("how", "function", "message"),
    [
        ("call", None, "how 'call' swaps a function call"),
        ("slots", "relu", "how 'slots' swaps a module's calls"),
        ("jit", "relu", "how 'jit' is not replace, rewrite, attribute or call"),
    ],
    ids=["call-without-function", "slots-with-function", "unknown-how"],
)
def test_a_plan_with_an_impossible_how_is_refused(
    how: str, function: str | None, message: str
) -> None:
    plan = deadcheck.plan_swap(SharedModule(), "prelu", example_inputs=torch.randn(2, 3)).to_dict()
    plan["sites"][0].update(how=how, function=function)
    with pytest.raises(SwapError, match=message):
        deadcheck.SwapPlan.from_dict(plan)


def test_options_beside_a_plan_are_refused_not_ignored() -> None:
    model, x = SharedModule(), torch.randn(2, 3)
    plan = deadcheck.plan_swap(model, "leaky_relu", example_inputs=x)
    with pytest.raises(SwapError, match="negative_slope would be ignored"):
        deadcheck.swap(model, negative_slope=0.0, plan=plan)
    with pytest.raises(SwapError, match="to, example_inputs would be ignored"):
        deadcheck.swap(model, "prelu", example_inputs=x, plan=plan)
    assert isinstance(deadcheck.swap(model, plan=plan), nn.Module)
