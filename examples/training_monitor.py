"""Watch units die while a small CNN trains, in TensorBoard.

A small CNN on scikit-learn's 8x8 handwritten digits trains with plain SGD;
after 60 healthy steps the learning rate jumps tenfold, as a bad schedule
would do. ``deadcheck.Monitor`` snapshots every 20 steps, logs to TensorBoard
and flags the layers whose dead share keeps rising. Open the dashboard with
the command printed at the end.

Run: ``python examples/training_monitor.py [LOG_DIR]`` (default runs/training_monitor).
"""

from __future__ import annotations

import os
import sys

import torch
from torch import nn

import deadcheck

from _digits import load_digits

QUICK = os.environ.get("DEADCHECK_QUICK") == "1"
STEPS = 200 if QUICK else 400
EVERY = 20


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 64, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def main() -> None:
    log_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("runs", "training_monitor")
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # unnormalised 0..16
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = SmallCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(1)
    print(
        f"{'step':>5}  dead share per site ("
        + ", ".join(["features.1", "features.3", "head.2"])
        + ")"
    )
    with deadcheck.Monitor(model, log_dir=log_dir, every=EVERY) as monitor:
        for step in range(1, STEPS + 1):
            if step == 60:
                for group in optimizer.param_groups:
                    group["lr"] = 0.1  # the schedule goes wrong here
            idx = torch.randint(0, len(x), (64,), generator=generator)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            snapshot = monitor.step()
            if snapshot is not None:
                shares = "  ".join(
                    f"{layer.dead_fraction:>6.0%}" for layer in snapshot.report.sites
                )
                flags = [
                    f.site for f in snapshot.report.findings if f.code == "rising-dead-fraction"
                ]
                note = f"  rising: {', '.join(flags)}" if flags else ""
                print(f"{step:>5}  {shares}   loss {loss.item():.3f}{note}")
    report = monitor.report()
    print("\nlast snapshot findings:")
    for finding in report.findings if report else ():
        print(f"  {finding.severity:<8}{finding.code:<22}{finding.site}: {finding.message}")
    print(f"\nopen the dashboard: tensorboard --logdir {log_dir} --host 127.0.0.1")


if __name__ == "__main__":
    main()
