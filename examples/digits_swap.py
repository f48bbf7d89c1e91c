"""Dying ReLUs on real handwritten digits, found by deadcheck and repaired by a swap.

An MLP on scikit-learn's ``load_digits`` (real 8x8 scans, shipped inside the
package; inputs left unnormalised, 0..16) is trained with Adam at a learning
rate of 0.1, high enough to kill its ReLUs. deadcheck flags the dying layers;
the flagged sites are swapped to LeakyReLU and to PReLU and training goes on.
For comparison the same start is also trained with each activation from step 0.

Training runs in float64. Which units a high learning rate kills hinges on
chaotic dynamics: in float32 the AVX2 and AVX-512 kernels of the same CPU round
differently and, after a few hundred steps, leave different units alive. In
float64 the kill is the same on every CPU tried; what training does after the
swap still varies a few points between CPUs, so the tests assert the claim with
margins, never the printed digits.

Run: ``python examples/digits_swap.py`` (about ten seconds on two CPU cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import deadcheck

from _digits import load_digits

SEED = 0
DTYPE = torch.float64
HIGH_LR, LOW_LR, STEPS = 0.1, 0.01, 300


def load() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and test splits of the digits (1,400 / 397 images)."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=DTYPE)
    y = torch.tensor(digits.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    train, test = order[:1400], order[1400:]
    return x[train], y[train], x[test], y[test]


def fresh_mlp() -> nn.Sequential:
    """The same initial weights every call."""
    torch.manual_seed(SEED)
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)
    ).to(DTYPE)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@dataclass(frozen=True)
class Outcome:
    name: str
    dead: tuple[float, ...]  # dead share per activation site, on the training inputs
    accuracy: float  # on the held-out test images
    report: deadcheck.Report


def measure(name: str, model: nn.Module, data: tuple[torch.Tensor, ...]) -> Outcome:
    x_train, _, x_test, y_test = data
    model.eval()  # judged as it will be used
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        with deadcheck.record(model) as recorder:
            model(x_train)
    report = recorder.report()
    return Outcome(name, tuple(layer.dead_fraction for layer in report.sites), accuracy, report)


def run() -> list[Outcome]:
    data = load()
    x, y = data[0], data[1]
    relu = fresh_mlp()
    train(relu, x, y, HIGH_LR, seed=1)
    start = measure(f"ReLU after {STEPS} steps at lr {HIGH_LR}", relu, data)
    outcomes = [start]
    for to in ("leaky_relu", "prelu"):
        swapped = deadcheck.swap(relu, to, sites=start.report)  # only the flagged sites
        train(swapped, x, y, LOW_LR, seed=2)
        outcomes.append(measure(f"  swap flagged to {to}, train on", swapped, data))
    train(relu, x, y, LOW_LR, seed=2)
    outcomes.append(measure("  keep ReLU, train on", relu, data))
    for to in ("leaky_relu", "prelu"):
        model = deadcheck.swap(fresh_mlp(), to, example_inputs=x[:2])
        train(model, x, y, HIGH_LR, seed=1)
        outcomes.append(measure(f"{to} from the same start", model, data))
    return outcomes


def main() -> None:
    outcomes = run()
    start = outcomes[0].report
    print(deadcheck.render(start).split("\n\nsite")[0])
    print(f"\nflagged and swapped: {', '.join(start.flagged_sites)}\n")
    print(f"{'run':<42}{'dead site 1':>12}{'dead site 3':>12}{'test acc':>10}")
    for o in outcomes:
        print(f"{o.name:<42}{o.dead[0]:>12.1%}{o.dead[1]:>12.1%}{o.accuracy:>10.1%}")
    print(
        "\n'dead' for LeakyReLU/PReLU sites means every input was negative: the unit still "
        "gets a gradient, so it can come back."
    )


if __name__ == "__main__":
    main()
