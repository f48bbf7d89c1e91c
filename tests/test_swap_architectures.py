"""Swaps on the architectures users repair: units on any axis, loops, held functions."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from deadcheck.core.errors import SwapError
from deadcheck.recording.layers import AxisPReLU


class FFN(nn.Module):
    """A ReLU on a Linear output of any rank: units on the last axis."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(4, 6)
        self.act = nn.ReLU()
        self.down = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class ConvNet(nn.Module):
    """A ReLU on a convolution: units on axis 1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


AXIS_CASES = {
    "axis1-conv": (ConvNet, (3, 2, 5, 5), 1),
    "last-axis-3d": (FFN, (3, 6, 4), -1),  # sequence length 6 = feature count: no crash hides it
    "last-axis-4d": (FFN, (2, 3, 5, 4), -1),
}


@pytest.mark.parametrize("case", sorted(AXIS_CASES))
def test_prelu_slopes_act_on_the_sites_unit_axis(case: str) -> None:
    build, shape, axis = AXIS_CASES[case]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(shape)
    swapped = deadcheck.swap(model, "prelu", example_inputs=x)
    prelu = swapped.act
    assert isinstance(prelu, AxisPReLU) and prelu.axis == axis and prelu.num_parameters == 6
    slopes = torch.tensor([0.1, -0.2, 0.3, 0.45, 0.5, 2.0])
    with torch.no_grad():
        prelu.weight.copy_(slopes)
        pre = (model.conv if hasattr(model, "conv") else model.up)(x)
        shape_of_slopes = [1] * pre.ndim
        shape_of_slopes[axis] = 6
        expected = torch.where(pre > 0, pre, slopes.view(shape_of_slopes) * pre)
        assert torch.equal(prelu(pre), expected)
        # Recorded, the swapped site has 6 units on the same axis, with the distinct slopes.
        with deadcheck.record(swapped) as rec:
            swapped(x)
    site = rec.stats().site("act")
    assert (site.kind, site.units, site.unit_axis) == ("PReLU", 6, axis % len(shape))
    assert site.slope == pytest.approx(tuple(slopes.tolist()))


def test_a_prelu_plan_replays_into_a_fresh_model_with_a_strict_state_dict(tmp_path) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4)
    plan = deadcheck.plan_swap(FFN(), "prelu", example_inputs=x)
    trained = deadcheck.apply_plan(FFN(), plan)
    with torch.no_grad():
        trained.act.weight.copy_(torch.linspace(-1, 1, 6))
    (tmp_path / "plan.json").write_text(plan.to_json())
    fresh = deadcheck.swap(FFN(), plan=tmp_path / "plan.json")
    fresh.load_state_dict(trained.state_dict(), strict=True)
    assert isinstance(fresh.act, AxisPReLU) and fresh.act.axis == -1
    assert torch.equal(fresh(x), trained(x))


class Looped(nn.Module):
    """One ReLU module run in a loop, as RAFT's update block runs 12 times per pass."""

    def __init__(self, steps: int = 5) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = nn.ReLU()
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            x = self.act(self.fc(x)) - 0.5
        return x


class CalledByLoop(nn.Module):
    """A block whose own code calls its ReLU once, itself called in a loop (traces, mismatches)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(3):
            x = self.block(x) - 0.5
        return self.out(x)


def _encoder() -> nn.Module:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="relu", batch_first=True)
    return nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)


LOOP_CASES = {
    "relu-in-a-loop": (Looped, (3, 4)),
    "block-called-in-a-loop": (CalledByLoop, (3, 4)),
    "transformer-encoder-relu": (_encoder, (2, 5, 8)),
}


def _relu_sites(model: nn.Module, x: torch.Tensor) -> list[str]:
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(x)
    return [s.name for s in rec.stats().sites if s.kind == "ReLU"]


@pytest.mark.parametrize("to", ["leaky_relu", "prelu"])
@pytest.mark.parametrize("case", sorted(LOOP_CASES))
def test_every_site_swaps_where_modules_run_many_times(case: str, to: str) -> None:
    build, shape = LOOP_CASES[case]
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(shape)
    assert _relu_sites(model, x)
    swapped = deadcheck.swap(model, to, negative_slope=0.0, init=0.0, example_inputs=x)
    assert _relu_sites(swapped, x) == []
    with torch.no_grad():
        assert torch.equal(swapped(x), model(x))  # slope 0: exactly the ReLU model's outputs
    assert _relu_sites(model, x)  # the original is untouched


def test_the_transformer_layer_keeps_its_swapped_activation_in_eval_mode() -> None:
    """torch's fused fast path would ignore the new module; the swap turns it off."""
    torch.manual_seed(0)
    model = _encoder().eval()
    x = torch.randn(2, 5, 8)
    swapped = deadcheck.swap(model, "leaky_relu", negative_slope=0.5, example_inputs=x)
    assert isinstance(swapped.layers[0].activation, nn.LeakyReLU)
    with torch.no_grad():
        assert not torch.allclose(swapped(x), model(x))
        plan = deadcheck.plan_swap(model, "leaky_relu", example_inputs=x)
    assert {s.how for s in plan.sites} == {"attribute"}
    assert [s.new_site for s in plan.sites] == ["layers.0.activation", "layers.1.activation"]


def test_all_and_flagged_mean_what_they_mean_on_the_command_line() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU())
    with torch.no_grad():
        model[2].bias.fill_(-100.0)  # the second ReLU is dead on every input
    x = torch.randn(8, 3)
    everything = deadcheck.plan_swap(model, "leaky_relu", "all", example_inputs=x)
    assert [s.site for s in everything.sites] == ["1", "3"]
    flagged = deadcheck.plan_swap(model, "leaky_relu", "flagged", example_inputs=x)
    assert [s.site for s in flagged.sites] == ["3"]
    swapped = deadcheck.swap(copy.deepcopy(model), "prelu", sites="flagged", example_inputs=x)
    assert isinstance(swapped[3], nn.PReLU) and isinstance(swapped[1], nn.ReLU)


def test_a_call_in_code_that_does_not_trace_is_swapped_at_run_time_on_every_branch() -> None:
    class Untraceable(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                return F.relu(x)
            return F.relu(-x)

    model = Untraceable()
    x = torch.randn(4, 3)
    plan = deadcheck.plan_swap(model, "leaky_relu", "all", negative_slope=0.5, example_inputs=x)
    assert [(s.site, s.how, s.new_site) for s in plan.sites] == [(":relu", "call", "relu")]
    swapped = deadcheck.swap(model, plan=plan)
    for batch in (torch.ones(2, 3) * -2, torch.ones(2, 3) * 2, -torch.ones(2, 3) * 2):
        taken = batch if batch.sum() > 0 else -batch
        assert torch.equal(swapped(batch), F.leaky_relu(taken, 0.5))
    assert torch.equal(model(-torch.ones(2, 3)), torch.ones(2, 3))  # the original is untouched


def test_a_plan_with_the_unreleased_inplace_key_is_refused_and_one_without_how_replays(
    tmp_path,
) -> None:
    """The never-released "inplace" key is refused by name; "how" and "unit_axis" default."""
    old = {
        "schema": "deadcheck.swap-plan/1",
        "to": "leaky_relu",
        "sites": [
            {
                "site": "1",
                "kind": "ReLU",
                "module": "1",
                "function": None,
                "caller": "",
                "index": 0,
                "occurrences": 1,
                "units": 4,
                "becomes": "LeakyReLU",
                "slope": 0.1,
                "num_parameters": 1,
                "inplace": True,
                "new_site": "1",
            }
        ],
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(old))
    with pytest.raises(SwapError, match="unknown field 'inplace'"):
        deadcheck.swap(nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True)), plan=path)
    old["sites"][0]["activation_inplace"] = old["sites"][0].pop("inplace")
    path.write_text(json.dumps(old))
    model = deadcheck.swap(nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True)), plan=path)
    assert isinstance(model[1], nn.LeakyReLU) and model[1].inplace is True
    assert model[1].negative_slope == 0.1
