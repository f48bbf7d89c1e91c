"""Loss of plasticity on real digits, and its repair by recycling dormant units.

Continual learning on scikit-learn's handwritten digits: every task is the same
ten-class problem with a new fixed permutation of the 64 pixels, learned for 3
epochs by one MLP (three ReLU layers of 128, Adam at lr 0.01) that never
resets. Plain training loses plasticity: units die one task after another and
the accuracy the net reaches on a new task falls. The same run with
``deadcheck.Recycler`` recycling the units whose dormant score is at most 0.1
twice per task keeps learning. Training runs in float64, so the units that die
are the same on every CPU, and the tests assert the claim with margins.

Run: ``python examples/continual_digits.py [plot.png]`` (about a minute on two
cores; ``DEADCHECK_QUICK=1``: fewer tasks, still the effect).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

import deadcheck

from _digits import load_digits

QUICK = os.environ.get("DEADCHECK_QUICK") == "1"
TASKS = 24 if QUICK else 60
EPOCHS, BATCH, LR, WIDTH, TAU = 3, 64, 0.01, 128, 0.1
DTYPE = torch.float64


@dataclass(frozen=True)
class Run:
    name: str
    accuracy: list[float]  # test accuracy at the end of each task
    dead: list[float]  # share of all hidden units dead on that task's inputs
    dormant: list[float]  # share of all hidden units with dormant score <= TAU
    recycled: int  # units recycled over the run


def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=DTYPE) / 16.0
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[order[:1400]], y[order[:1400]], x[order[1400:]], y[order[1400:]]


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = 64
    for _ in range(3):
        layers += [nn.Linear(width, WIDTH), nn.ReLU()]
        width = WIDTH
    return nn.Sequential(*layers, nn.Linear(WIDTH, 10)).to(DTYPE)


def shares(model: nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """Dead and dormant share of all hidden units on inputs ``x``."""
    report = deadcheck.scan(model, [x], dormant=TAU)  # eval mode, then the mode it was in
    units = sum(site.units for site in report.sites)
    dead = sum(len(site.dead_units) for site in report.sites)
    dormant = sum(len(site.dormant_units or ()) for site in report.sites)
    return dead / units, dormant / units


def run(recycling: bool) -> Run:
    x, y, x_test, y_test = data()
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    steps_per_task = EPOCHS * -(-len(x) // BATCH)
    recycler = (
        deadcheck.Recycler(model, optimizer, every=steps_per_task // 2, tau=TAU)
        if recycling
        else None
    )
    generator = torch.Generator().manual_seed(1)
    accuracy, dead, dormant = [], [], []
    try:
        for task in range(TASKS):
            pixels = torch.randperm(64, generator=torch.Generator().manual_seed(100 + task))
            xt, xt_test = x[:, pixels], x_test[:, pixels]
            for _ in range(EPOCHS):
                for batch in torch.randperm(len(x), generator=generator).split(BATCH):
                    loss = nn.functional.cross_entropy(model(xt[batch]), y[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if recycler is not None:
                        recycler.step()
            with recycler.paused() if recycler is not None else torch.no_grad():
                with torch.no_grad():
                    accuracy.append((model(xt_test).argmax(1) == y_test).double().mean().item())
                d, r = shares(model, xt)
            dead.append(d)
            dormant.append(r)
    finally:
        if recycler is not None:
            recycler.close()
    recycled = sum(r.units for r in recycler.history) if recycler is not None else 0
    return Run("recycling" if recycling else "plain", accuracy, dead, dormant, recycled)


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def plot(runs: list[Run], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, constrained_layout=True)
    for run_, color in zip(runs, ("#e45756", "#4c78a8"), strict=True):
        tasks = range(1, len(run_.accuracy) + 1)
        top.plot(tasks, run_.accuracy, color=color, label=run_.name)
        bottom.plot(tasks, run_.dead, color=color, label=f"{run_.name}: dead")
        bottom.plot(tasks, run_.dormant, color=color, linestyle="--", label=f"{run_.name}: dormant")
    top.set_ylabel("test accuracy on the task")
    top.legend()
    bottom.set_ylabel("share of hidden units")
    bottom.set_xlabel("task (a new pixel permutation each)")
    bottom.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    runs = [run(recycling=False), run(recycling=True)]
    k = 5
    print(f"{TASKS} tasks, {EPOCHS} epochs each; first and last {k} tasks")
    header = ("acc first", "acc last", "dead last", "dorm last", "recycled")
    print(f"{'run':<10}" + "".join(f"{h:>10}" for h in header))
    for r in runs:
        print(
            f"{r.name:<10}{mean(r.accuracy[:k]):>10.2f}{mean(r.accuracy[-k:]):>10.2f}"
            f"{mean(r.dead[-k:]):>10.2f}{mean(r.dormant[-k:]):>10.2f}{r.recycled:>10}"
        )
    print("\ntask  " + "".join(f"{t:>5}" for t in range(1, TASKS + 1, max(1, TASKS // 12))))
    for r in runs:
        step = max(1, TASKS // 12)
        print(f"{r.name[:5]:<6}" + "".join(f"{a:>5.2f}" for a in r.accuracy[::step]))
    if len(sys.argv) > 1:
        plot(runs, sys.argv[1])
        print(f"\nwrote {sys.argv[1]}")


if __name__ == "__main__":
    main()
