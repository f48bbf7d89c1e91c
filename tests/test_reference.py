"""The recorder's counters agree with a brute-force reference that stores every activation."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import deadcheck
from tests.helpers import ACTIVATION_MODULES, FUNCTIONS, Functional, Reference


def random_activation(rng: random.Random) -> nn.Module:
    if rng.random() < 0.5:
        return ACTIVATION_MODULES[rng.choice(sorted(ACTIVATION_MODULES))]()
    return Functional(FUNCTIONS[rng.choice(sorted(FUNCTIONS))])


def plant(layer: nn.Module, rng: random.Random) -> nn.Module:
    """Give some units a large negative bias: dead on every input."""
    with torch.no_grad():
        for unit in range(layer.bias.numel()):
            if rng.random() < 0.3:
                layer.bias[unit] = -100.0
    return layer


def random_model(seed: int) -> tuple[nn.Module, torch.Tensor, dict[str, int]]:
    """A random small network, an input for it, and each activation's expected unit axis."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    family = rng.choice(["mlp", "cnn2d", "conv1d", "tokens"])
    layers: list[nn.Module] = []
    axes: dict[str, int] = {}
    width = rng.randint(1, 6)
    if family == "cnn2d":
        x = torch.randn(rng.randint(1, 3), width, rng.randint(1, 5), rng.randint(1, 5))
    elif family == "conv1d":
        x = torch.randn(rng.randint(1, 3), width, rng.randint(1, 7))
    elif family == "tokens":
        x = torch.randn(rng.randint(1, 3), rng.randint(1, 5), width)
    else:
        x = torch.randn(rng.randint(1, 9), width)
    for _ in range(rng.randint(1, 4)):
        out = rng.randint(1, 7)
        if family == "cnn2d":
            layers.append(plant(nn.Conv2d(width, out, rng.choice([1, 3]), padding="same"), rng))
            if rng.random() < 0.5:
                layers.append(nn.BatchNorm2d(out))
            axis = 1
        elif family == "conv1d":
            layers.append(plant(nn.Conv1d(width, out, rng.choice([1, 3]), padding="same"), rng))
            axis = 1
        else:
            layers.append(plant(nn.Linear(width, out), rng))
            if rng.random() < 0.3:
                layers.append(nn.LayerNorm(out))
            axis = x.ndim - 1
        axes[str(len(layers))] = axis
        act = random_activation(rng)
        if isinstance(act, nn.PReLU) and axis == 1 and rng.random() < 0.5:
            act = nn.PReLU(out)
        layers.append(act)
        width = out
    model = nn.Sequential(*layers)
    model.train(rng.random() < 0.5)
    if any(isinstance(m, nn.RReLU) for m in model.modules()):
        model.eval()  # RReLU draws random slopes in training; sign counts stay exact either way
    return model, x, axes


@pytest.mark.parametrize("seed", range(40), ids=lambda s: f"seed{s}")
def test_counts_match_brute_force(seed: int) -> None:
    model, x, axes = random_model(seed)
    reference = Reference(model)
    try:
        with torch.no_grad(), deadcheck.record(model) as rec:
            for chunk in x.split(max(1, x.shape[0] // 2)):
                model(chunk)
                model(chunk * 3)
    finally:
        reference.close()
    stats = rec.stats()
    assert sorted(s.module for s in stats.sites) == sorted(reference.inputs)
    for site in stats.sites:
        assert site.unit_axis == axes[site.module], site.name
        reference.check(site)
