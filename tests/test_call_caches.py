"""What the recorder keeps between calls to save time never serves a stale answer.

Per call, the recorder reuses what it worked out before: what an activation
module amounts to (its kind and slope), where a call is (its site), and how a
call is read (its input or output, and how its |output| follows). A slope
changed during training, a weight replaced, or a module replaced between
recordings must be read again; the sums then equal brute force over every call.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import deadcheck
from deadcheck.recording.activations import ModuleCalls
from tests.helpers import close_values


def _net(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), act).eval()


def _brute_mean_abs(outputs: list[torch.Tensor]) -> list[float]:
    rows = torch.cat([o.double() for o in outputs])
    return rows.abs().mean(0).tolist()


def test_a_leaky_slope_changed_between_passes_is_read_again() -> None:
    model = _net(nn.LeakyReLU(0.1))
    x = torch.randn(32, 5)
    outputs = []
    with deadcheck.record(model) as rec, torch.no_grad():
        outputs.append(model(x))
        model[1].negative_slope = 0.5  # e.g. annealed by the training loop
        outputs.append(model(x))
    site = rec.stats().site("1")
    assert site.slope == 0.5
    # the |output| sums follow from the input with |slope|: a kept 0.1 would be far off
    assert close_values(site.mean_abs, _brute_mean_abs(outputs), rtol=1e-5)


def _replace_weight(act: nn.Module) -> None:
    act.weight = nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.0]))


def _train_weight(act: nn.Module) -> None:
    act.weight.mul_(-3.0)  # an optimiser step: the same Parameter, new values


@pytest.mark.parametrize("change", [_replace_weight, _train_weight], ids=["replaced", "trained"])
def test_a_prelu_weight_changed_between_passes_is_read_again(change) -> None:
    model = _net(nn.PReLU(4))
    x = torch.randn(32, 5)
    outputs = []
    with deadcheck.record(model) as rec, torch.no_grad():
        outputs.append(model(x))
        change(model[1])
        outputs.append(model(x))
    assert close_values(rec.stats().site("1").mean_abs, _brute_mean_abs(outputs), rtol=1e-5)


CHANGES = [
    pytest.param(lambda m: setattr(m, "negative_slope", 0.2), True, id="leaky-slope"),
    pytest.param(lambda m: None, False, id="unchanged"),
    pytest.param(lambda m: setattr(m, "inplace", True), False, id="inplace-flag"),
]


@pytest.mark.parametrize(("change", "read_again"), CHANGES)
def test_module_calls_reads_a_module_again_only_when_its_answer_can_differ(
    change, read_again
) -> None:
    calls = ModuleCalls()
    module = nn.LeakyReLU(0.1)
    first = calls(module)
    change(module)
    second = calls(module)
    assert (second is not first) == read_again
    assert second.slope == module.negative_slope


def test_module_calls_reads_a_hardtanh_range_change() -> None:
    calls = ModuleCalls()
    module = nn.Hardtanh(0.0, 6.0)
    assert calls(module).kind == "ReLU6"
    module.max_val = 1.0
    assert calls(module).kind == "ReLU"  # not ReLU6 any more: read as the default kind


def test_a_module_replaced_between_recordings_is_counted_at_its_path() -> None:
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU()).eval()
    x = torch.randn(8, 5)
    rec = deadcheck.Recorder(model)
    with rec, torch.no_grad():
        model(x)
    model[3] = nn.ReLU()  # a new module object at the same path, between two recordings
    with rec, torch.no_grad():
        model(x)
    assert {site.name: site.calls for site in rec.stats().sites} == {"1": 2, "3": 2}


def test_leaky_relu_of_slope_zero_is_read_on_its_output() -> None:
    """LeakyReLU(0) of -inf is NaN (0 * -inf): only its output shows that."""
    model = nn.Sequential(nn.Identity(), nn.LeakyReLU(0.0)).eval()
    x = torch.tensor([[-math.inf, 1.0], [2.0, -1.0]])
    with deadcheck.record(model) as rec, torch.no_grad():
        out = model(x)
    assert torch.isnan(out[0, 0])
    site = rec.stats().site("1")
    assert site.nan_units == (0,)
