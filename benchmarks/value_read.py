"""What the value statistics (dormant sums, margins) add to counting, measured head to head.

Run: ``python benchmarks/value_read.py`` (about 5 minutes on 2 CPU cores;
``--pairs`` and ``--only`` shorten it).

``benchmarks/run.py --opt-in`` times each recorder against the plain model,
and its columns move by about 0.02 from run to run on a shared 2-core
machine: more than the difference asked about here. This script times the two
recorders against each other instead: each round runs the plain model, a
recorder of the counts alone (``dormant_sums=False, margins=False``) and the
default recorder (both on), in turn, and prints per workload and mode the
median of default / counts (the cost of the value statistics, 1.000 = free)
beside each one's median ratio to the plain model, and the spread of the
direct ratio (its interquartile range) so that a reader can tell a cost from
noise.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torchvision
from torch import nn

import deadcheck
from deadcheck.recording import kernel

WORKLOADS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet18": (torchvision.models.resnet18, (16, 3, 160, 160)),
    "resnet50": (torchvision.models.resnet50, (8, 3, 160, 160)),
}


def _timed(model: nn.Module, x: torch.Tensor, train: bool) -> float:
    start = time.perf_counter()
    if train:
        model(x).sum().backward()
    else:
        with torch.inference_mode():
            model(x)
    return time.perf_counter() - start


def _recorded(
    recorder: deadcheck.Recorder, model: nn.Module, x: torch.Tensor, train: bool
) -> float:
    recorder.attach()
    try:
        return _timed(model, x, train)
    finally:
        recorder.detach()


def compare(model: nn.Module, x: torch.Tensor, train: bool, pairs: int) -> dict[str, float]:
    """Medians of counts/plain, default/plain and default/counts over interleaved rounds."""
    counts_only = deadcheck.Recorder(model, dormant_sums=False, margins=False)
    default = deadcheck.Recorder(model)
    plain_ratio, default_ratio, direct = [], [], []
    for i in range(pairs + 2):
        plain = _timed(model, x, train)
        counted = _recorded(counts_only, model, x, train)
        full = _recorded(default, model, x, train)
        if i >= 2:  # warm-up rounds
            plain_ratio.append(counted / plain)
            default_ratio.append(full / plain)
            direct.append(full / counted)
    quartiles = statistics.quantiles(direct, n=4)
    return {
        "counts": statistics.median(plain_ratio),
        "default": statistics.median(default_ratio),
        "direct": statistics.median(direct),
        "iqr": quartiles[2] - quartiles[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=41)
    parser.add_argument("--only", choices=sorted(WORKLOADS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # the training rows record in training mode on purpose
    warnings.filterwarnings("ignore", category=deadcheck.TrainingModeWarning)
    print(f"date: {datetime.date.today()}  torch {torch.__version__}  threads {args.threads}")
    print(f"counting: {kernel.status()}  ({args.pairs} interleaved rounds)\n")
    print(
        f"{'workload':<10}{'mode':<11}{'counts/plain':>14}{'default/plain':>15}"
        f"{'default/counts':>16}{'IQR':>8}"
    )
    for name, (build, shape) in WORKLOADS.items():
        if args.only not in (None, name):
            continue
        model = build().eval()
        x = torch.randn(shape)
        for mode in ("inference", "training"):
            train = mode == "training"
            model.train(train)
            got = compare(model, x, train, args.pairs)
            print(
                f"{name:<10}{mode:<11}{got['counts']:>14.3f}{got['default']:>15.3f}"
                f"{got['direct']:>16.3f}{got['iqr']:>8.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
