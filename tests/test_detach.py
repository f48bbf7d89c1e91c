"""Attaching leaves no trace: hooks and the function mode go away, even on errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.overrides import _get_current_function_mode_stack

import deadcheck
from tests.helpers import linear


class Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = linear([[1.0]], [0.0])
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.act(self.fc(x))
        raise RuntimeError("user bug")


def hook_counts(model: nn.Module) -> list[tuple[int, int]]:
    return [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]


def snapshot(model: nn.Module) -> tuple[dict[str, torch.Tensor], set[str], list[bool]]:
    state = copy.deepcopy(model.state_dict())
    attributes = {k for m in model.modules() for k in vars(m)}
    return state, attributes, [m.training for m in model.modules()]


def test_hooks_and_mode_removed_when_forward_raises() -> None:
    model = Exploding()
    before = hook_counts(model)
    with pytest.raises(RuntimeError, match="user bug"), deadcheck.record(model) as rec:
        model(torch.ones(2, 1))
    assert hook_counts(model) == before
    assert _get_current_function_mode_stack() == []
    assert not rec.attached
    assert rec.stats().site("act").positions == 2  # what ran before the error still counts


def test_mode_is_off_between_forward_passes_and_after_a_failed_one() -> None:
    model = Exploding()
    with deadcheck.record(model):
        with pytest.raises(RuntimeError):
            model(torch.ones(1, 1))
        assert _get_current_function_mode_stack() == []


def test_model_state_attributes_and_flags_untouched() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout())
    model[1].eval()
    before = snapshot(model)
    with deadcheck.record(model):
        model(torch.randn(5, 3))
    after = snapshot(model)
    assert before[1] == after[1]
    assert before[2] == after[2]
    for key, value in before[0].items():
        assert torch.equal(value, after[0][key]), key


def test_user_hooks_stay_in_place_and_keep_running() -> None:
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    calls: list[str] = []
    handle = model[1].register_forward_hook(lambda m, i, o: calls.append("mine"))
    with deadcheck.record(model) as rec:
        model(torch.ones(1, 1))
    model(torch.ones(1, 1))
    assert calls == ["mine", "mine"]
    assert list(model[1]._forward_hooks) == [handle.id]
    assert rec.stats().site("1").calls == 1


def test_detach_is_idempotent() -> None:
    model = nn.Sequential(nn.Linear(1, 2), nn.ReLU())
    rec = deadcheck.record(model).attach()
    rec.detach()
    rec.detach()
    assert hook_counts(model) == [(0, 0)] * 3


def test_torchscript_is_refused_clearly() -> None:
    scripted = torch.jit.script(nn.Sequential(nn.Linear(1, 2), nn.ReLU()))
    with pytest.raises(deadcheck.RecordingError, match="TorchScript"):
        deadcheck.record(scripted)


def test_not_a_module_is_refused() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        deadcheck.record(lambda x: x)  # type: ignore[arg-type]


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_scan_restores_buffers_flags_and_random_state(train: bool) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Dropout())
    model.train()
    before = snapshot(model)
    batches = [torch.randn(5, 3), torch.randn(5, 3)]
    rng = torch.get_rng_state()
    deadcheck.scan(model, batches, train=train)
    after = snapshot(model)
    assert before[2] == after[2]
    for key, value in before[0].items():
        assert torch.equal(value, after[0][key]), key
    assert torch.equal(rng, torch.get_rng_state())
