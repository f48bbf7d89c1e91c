"""Units that never cross their kink are linear on the data: found, then replaced, on real digits.

A LeakyReLU MLP trained with plain SGD on scikit-learn's ``load_digits``.
deadcheck, scanning the training data, finds that many units of the first
hidden layer never crossed their kink (``linear-units``): on handwritten
digits some pixels are always blank, so some units' inputs keep one sign.
Replacing each such unit's LeakyReLU by its linear equivalent (the identity
for a unit that stayed positive, its slope for one that stayed negative)
leaves every training prediction as it was, and moves test accuracy by less
than a point: those units really were linear, paying for a nonlinearity they
never used.

Run: ``python examples/linear_digits.py`` (a few seconds).
"""

from __future__ import annotations

import os

import torch
from torch import nn

import deadcheck

from _digits import load_digits

SEED, LR, SLOPE = 0, 0.05, 0.1
STEPS = 150 if os.environ.get("DEADCHECK_QUICK") else 400


class Linearised(nn.Module):
    """Per unit: ``x`` where it stayed positive, ``slope * x`` where it stayed negative."""

    def __init__(self, units: int, on: list[int], off: list[int], slope: float) -> None:
        super().__init__()
        scale = torch.ones(units)
        scale[off] = slope
        self.register_buffer("scale", scale)
        self.crossing = sorted(set(range(units)) - set(on) - set(off))
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.scale
        if self.crossing:  # units that did cross keep their nonlinearity
            out[:, self.crossing] = nn.functional.leaky_relu(x[:, self.crossing], self.slope)
        return out


def load() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    return x[order[:1400]], y[order[:1400]], x[order[1400:]], y[order[1400:]]


def build() -> nn.Sequential:
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Linear(64, 64),
        nn.LeakyReLU(SLOPE),
        nn.Linear(64, 64),
        nn.LeakyReLU(SLOPE),
        nn.Linear(64, 10),
    )
    return net


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def run() -> dict[str, float]:
    x, y, x_test, y_test = load()
    net = build()
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(SEED + 1)
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(net(x[idx] / 16), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    report = deadcheck.scan(net, [x / 16])
    site = report.site("1")
    on = list(site.figures["always_on_units"])
    off = [u for u in site.figures["linear_units"] if u not in on]
    print(deadcheck.render(report, "table"))
    linear = nn.Sequential(net[0], Linearised(64, on, off, SLOPE), *net[2:]).eval()
    with torch.no_grad():
        same = bool((net(x / 16).argmax(1) == linear(x / 16).argmax(1)).all())
    before, after = accuracy(net, x_test / 16, y_test), accuracy(linear, x_test / 16, y_test)
    print(
        f"site 1: {len(site.figures['linear_units'])} of 64 units linear on the training data; "
        f"replaced by their linear equivalent: training predictions unchanged: {same}; "
        f"test accuracy {100 * before:.1f}% -> {100 * after:.1f}%"
    )
    return {
        "linear": len(site.figures["linear_units"]) / 64,
        "same": float(same),
        "before": before,
        "after": after,
    }


if __name__ == "__main__":
    run()
