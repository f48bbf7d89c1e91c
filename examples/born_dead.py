"""Deep narrow ReLU nets can be dead at initialisation: measured with deadcheck.

Lu, Shin, Su and Karniadakis ("Dying ReLU and Initialization", 2019) showed
that a deep narrow ReLU net is born dead (constant output, zero gradient)
with a probability that tends to one with depth. Two exact cases to check
against:

* width 1, zero biases, one input drawn from [-1, 1]: the first layer always
  fires somewhere, every later layer is alive only if its weight is positive,
  so P(born dead) = 1 - 2**-(H - 1) for H hidden layers;
* at a single input x != 0, with zero biases, each layer of width N is silent
  with probability 2**-N, independently, so P(dead at that input) is
  1 - (1 - 2**-N)**H.

deadcheck counts a net as born dead when some site is a ``dead-layer`` on the
inputs fed. Beside ReLU: a small positive bias (an asymmetric start) and
LeakyReLU (a dead layer there still passes gradient, so it is not stuck).

Run: ``python examples/born_dead.py`` (``DEADCHECK_QUICK=1`` for fewer nets).
"""

from __future__ import annotations

import os

import torch
from torch import nn

import deadcheck

QUICK = os.environ.get("DEADCHECK_QUICK") == "1"
NETS = 200 if QUICK else 1000
DEPTHS = (2, 5, 10, 20)
WIDTHS = (1, 2, 4)


def net(width: int, depth: int, variant: str, generator: torch.Generator) -> nn.Sequential:
    layers: list[nn.Module] = []
    fan_in = 1
    for _ in range(depth):
        linear = nn.Linear(fan_in, width)
        with torch.no_grad():
            linear.weight.normal_(0, (2 / fan_in) ** 0.5, generator=generator)  # He init
            linear.bias.fill_(0.1 if variant == "positive bias 0.1" else 0.0)
        act = nn.LeakyReLU(0.01) if variant == "LeakyReLU" else nn.ReLU()
        layers += [linear, act]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 1))


def born_dead_share(width: int, depth: int, variant: str, inputs: torch.Tensor) -> float:
    generator = torch.Generator().manual_seed(width * 1000 + depth)
    dead = 0
    for _ in range(NETS):
        model = net(width, depth, variant, generator).eval()
        with torch.no_grad(), deadcheck.record(model) as recorder:
            model(inputs)
        report = recorder.report()
        dead += any(f.code == "dead-layer" for f in report.findings)
    return dead / NETS


def main() -> None:
    grid = torch.linspace(-1, 1, 101).reshape(-1, 1)
    print(f"share of {NETS} nets born dead (some layer dead on every input)\n")
    print("inputs: 101 points on [-1, 1]; zero biases; He-normal weights")
    print(f"{'width':>6}{'depth':>7}{'ReLU':>9}{'theory':>9}{'+bias 0.1':>11}{'Leaky':>8}")
    for width in WIDTHS:
        for depth in DEPTHS:
            relu = born_dead_share(width, depth, "ReLU", grid)
            theory = f"{1 - 2 ** -(depth - 1):.3f}" if width == 1 else "-"
            biased = born_dead_share(width, depth, "positive bias 0.1", grid)
            leaky = born_dead_share(width, depth, "LeakyReLU", grid)
            print(f"{width:>6}{depth:>7}{relu:>9.3f}{theory:>9}{biased:>11.3f}{leaky:>8.3f}")
    print("\nat one input (x = 0.5):")
    print(f"{'width':>6}{'depth':>7}{'ReLU':>9}{'theory':>9}")
    point = torch.tensor([[0.5]])
    for width in WIDTHS:
        for depth in DEPTHS:
            relu = born_dead_share(width, depth, "ReLU", point)
            theory = 1 - (1 - 2.0**-width) ** depth
            print(f"{width:>6}{depth:>7}{relu:>9.3f}{theory:>9.3f}")
    print(
        "\nLeakyReLU 'dead' layers (all inputs negative) still pass 1% of the gradient, "
        "so training can revive them; ReLU ones cannot."
    )


if __name__ == "__main__":
    main()
