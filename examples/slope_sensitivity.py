"""How much does LeakyReLU's slope matter? Measured, on real handwritten digits.

The same MLP on scikit-learn's ``load_digits`` (unnormalised, 0..16), trained
from the same start with plain SGD, once per slope. Printed: training loss
after 10, 50 and 200 steps, test accuracy, and deadcheck's findings about
the slope and the dead units. Tables of this kind that circulate online often
do not come out of their own code; this one is what this file computes.

Run: ``python examples/slope_sensitivity.py`` (a few seconds).
"""

from __future__ import annotations

import torch
from torch import nn

import deadcheck

from _digits import load_digits

SLOPES = (0.0, 0.001, 0.01, 0.1, 0.3, 0.9)
CHECKPOINTS = (10, 50, 200)
SEED, LR = 0, 0.05


def load() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    return x[order[:1400]], y[order[:1400]], x[order[1400:]], y[order[1400:]]


def model(slope: float) -> nn.Module:
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )
    if slope == 0.0:
        return net
    return deadcheck.swap(
        net, "leaky_relu", negative_slope=slope, example_inputs=torch.zeros(1, 64)
    )


def run(slope: float, data: tuple[torch.Tensor, ...]) -> tuple[list[float], float, list[str]]:
    x, y, x_test, y_test = data
    net = model(slope)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(SEED + 1)
    losses = []
    for step in range(1, max(CHECKPOINTS) + 1):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in CHECKPOINTS:
            with torch.no_grad():
                losses.append(nn.functional.cross_entropy(net(x), y).item())
    net.eval()
    with torch.no_grad(), deadcheck.record(net) as recorder:
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
        net(x)
    report = recorder.report()
    codes = sorted({f"{f.code}@{f.site}" for f in report.findings})
    return losses, accuracy, codes


def main() -> None:
    data = load()
    print(f"MLP 64-64-64-10 on load_digits, SGD lr {LR}, same start for every slope\n")
    head = "".join(f"{'loss@' + str(c):>10}" for c in CHECKPOINTS)
    print(f"{'slope':>7}{head}{'test acc':>10}  findings")
    for slope in SLOPES:
        losses, accuracy, codes = run(slope, data)
        cells = "".join(f"{loss:>10.3f}" for loss in losses)
        name = "ReLU" if slope == 0 else f"{slope:g}"
        print(f"{name:>7}{cells}{accuracy:>10.1%}  {', '.join(codes) or '-'}")


if __name__ == "__main__":
    main()
