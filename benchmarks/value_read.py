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

Whole-model ratios cannot resolve a cost below about 0.01 here, so it also
times the kernel alone: every activation one forward pass of the model
records (captured once), counted with and without the value statistics, 200
times each, interleaved; the sum of the median differences over the plain
forward pass's median time is the share of a pass the value statistics add.
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


#: One activation each, as the per-call table of docs/performance.md lists them.
SHAPES: list[tuple[str, tuple[int, ...], bool]] = [
    ("16x64x80x80", (16, 64, 80, 80), False),
    ("16x128x40x40", (16, 128, 40, 40), False),
    ("16x256x20x20", (16, 256, 20, 20), False),
    ("16x384x10x10", (16, 384, 10, 10), False),
    ("16x960x5x5", (16, 960, 5, 5), False),
    ("16x128x40x40 channels-last", (16, 128, 40, 40), True),
    ("2048x2048 features last", (2048, 2048), False),
    ("256x512 (deep MLP)", (256, 512), False),
]


def per_call(repeats: int = 200) -> list[tuple[str, float, float, float]]:
    """Per shape: median µs of one count, of one count with the value statistics, of a sum."""
    rows = []
    for name, shape, channels_last in SHAPES:
        y = torch.randn(shape).relu()
        if channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        units, dims = shape[1], [d for d in range(len(shape)) if d != 1]
        positive = torch.zeros(units)
        sums = torch.zeros(units, dtype=torch.float64)
        maxes = torch.zeros(units, dtype=torch.float64)
        times: list[list[float]] = [[], [], []]
        for _ in range(repeats):
            for k in range(3):
                start = time.perf_counter()
                if k == 0:
                    kernel.count_into(y, 1, positive, None, None)
                elif k == 1:
                    kernel.count_into(y, 1, positive, None, None, sums=sums, maxes=maxes)
                else:
                    y.sum(dims)
                times[k].append(time.perf_counter() - start)
        rows.append((name, *(statistics.median(t) * 1e6 for t in times)))
    return rows


def kernel_share(model: nn.Module, x: torch.Tensor, repeats: int = 200) -> tuple[float, float]:
    """The kernel's time for one pass's activations, counts alone and with the value
    statistics, each as a share of the plain forward pass (inference)."""
    seen: list[torch.Tensor] = []

    def keep(module: nn.Module, args: object, out: torch.Tensor) -> None:
        seen.append(out.detach().clone())

    handles = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    counts = full = 0.0
    for y in seen:
        units = y.shape[1]
        positive = torch.zeros(units)
        sums = torch.zeros(units, dtype=torch.float64)
        maxes = torch.zeros(units, dtype=torch.float64)
        alone, both = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            kernel.count_into(y, 1, positive, None, None)
            middle = time.perf_counter()
            kernel.count_into(y, 1, positive, None, None, sums=sums, maxes=maxes)
            both.append(time.perf_counter() - middle)
            alone.append(middle - start)
        counts += statistics.median(alone)
        full += statistics.median(both)
    plain = []
    with torch.inference_mode():
        for _ in range(20):
            start = time.perf_counter()
            model(x)
            plain.append(time.perf_counter() - start)
    forward = statistics.median(plain)
    return counts / forward, full / forward


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
    if not kernel.active():
        return
    print(
        f"\none call, median µs of 200:\n{'activation':<28}{'counts':>8}{'+ values':>10}{'sum':>8}"
    )
    for name, alone, full, plain_sum in per_call():
        print(f"{name:<28}{alone:>8.0f}{full:>10.0f}{plain_sum:>8.0f}", flush=True)
    print("\nthe kernel alone, one inference pass's activations, as a share of the pass:")
    print(f"{'workload':<10}{'counts':>10}{'+ values':>10}{'difference':>12}")
    for name, (build, shape) in WORKLOADS.items():
        if args.only not in (None, name):
            continue
        model = build().eval()
        alone, full = kernel_share(model, torch.randn(shape))
        print(f"{name:<10}{alone:>10.4f}{full:>10.4f}{full - alone:>12.4f}", flush=True)


if __name__ == "__main__":
    main()
