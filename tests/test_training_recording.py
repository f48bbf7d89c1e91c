"""Recording where users train: checkpointed blocks, sites that appear late, sample counts."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

import deadcheck


class Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(width, width)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(F.relu(self.fc(x)))


class Checkpointed(nn.Module):
    """Two checkpointable blocks, dropout inside, and one ReLU module shared inside and out."""

    def __init__(self, use_checkpoint: bool, reentrant: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.shared = nn.ReLU()
        self.narrow = nn.Linear(8, 4)
        self.head = nn.Linear(4, 3)
        self.use_checkpoint = use_checkpoint
        self.reentrant = reentrant

    def _inner(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(self.narrow(self.blocks[1](x)))  # the shared ReLU on 4 units

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shared(self.inp(x))  # the shared ReLU on 8 units, outside any checkpoint
        if self.use_checkpoint:
            x = checkpoint(self.blocks[0], x, use_reentrant=self.reentrant)
            x = checkpoint(self._inner, x, use_reentrant=self.reentrant)
        else:
            x = self._inner(self.blocks[0](x))
        return self.head(x)


def _train_and_record(model: nn.Module, batches: list[torch.Tensor]) -> deadcheck.Stats:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    model.train()
    with deadcheck.record(model) as rec:
        for x in batches:
            loss = model(x.requires_grad_()).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return rec.stats()


@pytest.mark.parametrize("reentrant", [True, False], ids=["reentrant", "non-reentrant"])
def test_checkpointed_training_counts_like_plain_training(reentrant: bool) -> None:
    batches = [torch.randn(5, 6, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    plain = _train_and_record(Checkpointed(False, reentrant), [b.clone() for b in batches])
    ckpt = _train_and_record(Checkpointed(True, reentrant), [b.clone() for b in batches])
    assert ckpt.samples == plain.samples == 20
    assert ckpt.problems == plain.problems == ()
    assert [s.name for s in ckpt.sites] == [
        "shared#0",
        "blocks.0:relu",
        "blocks.1:relu",
        "shared#1",
    ]
    assert [asdict(s) for s in ckpt.sites] == [asdict(s) for s in plain.sites]
    assert ckpt.site("shared#1").units == 4 and ckpt.site("shared#1").positions == 20


class LateBranch(nn.Module):
    """A site that runs only from pass ``first`` on, after ``producer``."""

    def __init__(self, producer: nn.Module, first: int) -> None:
        super().__init__()
        self.producer = producer
        self.always = nn.ReLU()
        self.first = first
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        y = self.producer(x)
        if self.passes >= self.first:
            return F.relu(y)
        return self.always(y)


LATE_CASES = {
    "conv1d": (lambda: nn.Conv1d(3, 6, 1), (2, 3, 7), 1, 6),
    "conv2d": (lambda: nn.Conv2d(3, 5, 1), (2, 3, 4, 4), 1, 5),
    "linear-3d": (lambda: nn.Linear(4, 7), (2, 3, 4), 2, 7),
    "linear-4d": (lambda: nn.Linear(4, 7), (2, 3, 4, 4), 3, 7),
}


@pytest.mark.parametrize("first", [2, 5], ids=["pass-2", "pass-5"])
@pytest.mark.parametrize("case", sorted(LATE_CASES))
def test_a_site_first_seen_late_gets_its_producers_axis(case: str, first: int) -> None:
    make, shape, axis, units = LATE_CASES[case]
    model = LateBranch(make(), first)
    with torch.no_grad(), deadcheck.record(model) as rec:
        for _ in range(first):
            model(torch.randn(shape))
    site = rec.stats().site(":relu")
    assert (site.unit_axis, site.units) == (axis, units)
    out_shape = list(shape)
    out_shape[axis] = units
    assert site.positions == torch.Size(out_shape).numel() // units


class Detector(nn.Module):
    """Takes a list of C, H, W images, as torchvision's detectors do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.act = nn.ReLU()

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return self.act(self.conv(torch.stack(images)))


def test_a_list_of_images_counts_one_sample_per_image() -> None:
    model = Detector()
    with torch.no_grad(), deadcheck.record(model) as rec:
        model([torch.randn(3, 8, 8) for _ in range(3)])
        model([torch.randn(3, 8, 8) for _ in range(2)])
    assert rec.stats().samples == 5


def test_sequence_first_inputs_count_samples_on_the_named_axis() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=False)
    with torch.no_grad(), deadcheck.record(layer, batch_axis=1) as rec:
        layer(torch.randn(7, 3, 8))  # T=7, N=3
    stats = rec.stats()
    assert stats.samples == 3
    assert stats.sites[0].positions == 21 and stats.sites[0].units == 16
    with torch.no_grad(), deadcheck.record(layer) as rec:
        layer(torch.randn(7, 3, 8))
    assert rec.stats().samples == 7  # the default guess, which batch_axis corrects


def test_a_unit_axis_for_one_call_wins_over_one_for_every_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.r = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.r(self.r(x))

    model = Twice()
    with deadcheck.record(model, unit_axis={"r": 1, "r#1": 2}) as rec:
        model(torch.randn(2, 3, 4))
    assert [(s.name, s.unit_axis, s.units) for s in rec.stats().sites] == [
        ("r#0", 1, 3),
        ("r#1", 2, 4),
    ]
