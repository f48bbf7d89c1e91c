"""What recording costs, as ratios measured side by side in one process.

Run: ``python benchmarks/run.py`` (about fifteen minutes on 2 CPU cores;
``--quick`` for a one-minute look, ``--only resnet18`` for one model).

For each model and mode the loop alternates plain forward, recorded forward,
plain, recorded, ... with the recorders taking turns, and reports the median
of the per-pair time ratios, so slow drifts of the machine cancel out and hit
every column alike. deadcheck is timed three ways: in steady state, on the
first pass of a fresh recorder (what a one-batch scan pays), and with its
compiled counting kernel off (pure torch). Beside it the benchmark measures two
recorders written the obvious way: a per-channel ``(out > 0).sum(dims)``
forward hook, and per-layer statistics read with ``.item()`` every batch as
popular training libraries record them; and, as the floor that no exact
count can beat, a hook that only reads every activation once (a per-unit sum).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchvision
from torch import nn

import deadcheck
from deadcheck.recording import kernel

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU)


class NaiveHooks:
    """Per-channel counts of positive outputs, the way one writes it first."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.counts: dict[tuple[str, int], torch.Tensor] = {}
        self.handles: list[Any] = []

    def hook(self, name: str) -> Callable[..., None]:
        def count(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            dims = [d for d in range(out.ndim) if d != 1]
            c = (out > 0).sum(dims)
            key = (name, c.numel())  # a shared module sees several channel counts
            self.counts[key] = self.counts[key] + c if key in self.counts else c

        return count

    def attach(self) -> None:
        for name, module in self.model.named_modules():
            if isinstance(module, ACTIVATIONS):
                self.handles.append(module.register_forward_hook(self.hook(name)))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


class ItemStats(NaiveHooks):
    """Per-layer zero fraction and mean read with .item() each batch (a host sync per layer)."""

    def hook(self, name: str) -> Callable[..., None]:
        log: list[tuple[float, float]] = []

        def stats(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            log.append(((out == 0).float().mean().item(), out.mean().item()))

        return stats


class OneRead(NaiveHooks):
    """Not a recorder: one per-unit sum of every activation, the floor of any exact count."""

    def hook(self, name: str) -> Callable[..., None]:
        def read(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            dims = [d for d in range(out.ndim) if d != 1]
            with torch.no_grad():
                s = out.sum(dims)
            key = (name, s.numel())
            self.counts[key] = self.counts[key] + s if key in self.counts else s

        return read


class FastaiStats(NaiveHooks):
    """Per-layer statistics as fastai's ``ActivationStats.hook`` computes them (no histogram).

    Its hook takes ``o.float().detach()`` and returns the mean, the standard
    deviation and the share of values <= 0.05, each read with ``.item()``.
    """

    def hook(self, name: str) -> Callable[..., None]:
        log: list[tuple[float, float, float]] = []

        def stats(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            st = out.float().detach()
            near_zero = (st <= 0.05).long().sum().item() / st.numel()
            log.append((st.mean().item(), st.std().item(), near_zero))

        return stats


class FirstPass:
    """deadcheck as a one-batch scan pays it: a fresh recorder each round (site discovery,
    layout hooks and counter creation inside the timed pass; attaching is not timed)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.recorder: deadcheck.Recorder | None = None

    def attach(self) -> None:
        self.recorder = deadcheck.Recorder(self.model).attach()

    def detach(self) -> None:
        if self.recorder is not None:
            self.recorder.detach()
            self.recorder = None


class PureTorch:
    """deadcheck with its compiled counting kernel off: what users without a C compiler get."""

    def __init__(self, model: nn.Module) -> None:
        self.recorder = deadcheck.Recorder(model)
        self.off = contextlib.ExitStack()

    def attach(self) -> None:
        self.off.enter_context(kernel.disabled())
        self.recorder.attach()

    def detach(self) -> None:
        self.recorder.detach()
        self.off.close()


#: The value statistics each on and off, and the opt-in gradients, as deadcheck columns of
#: their own (``--opt-in``): what each costs beside counting alone, in the same rounds.
OPT_IN: dict[str, Callable[[nn.Module], Any]] = {
    "deadcheck counts only": lambda model: deadcheck.Recorder(
        model, dormant_sums=False, margins=False
    ),
    "counts +dormant sums": lambda model: deadcheck.Recorder(
        model, dormant_sums=True, margins=False
    ),
    "counts +margins": lambda model: deadcheck.Recorder(model, dormant_sums=False, margins=True),
    "counts +sums +margins": lambda model: deadcheck.Recorder(
        model, dormant_sums=True, margins=True
    ),
    # a backward hook per activation: costs only where backward runs (the training rows)
    "deadcheck +gradients": lambda model: deadcheck.Recorder(model, gradients=True),
}

RECORDERS: dict[str, Callable[[nn.Module], Any]] = {
    "deadcheck": deadcheck.Recorder,
    "deadcheck 1st pass": FirstPass,
    "deadcheck pure torch": PureTorch,
    "hook (out>0).sum": NaiveHooks,
    "per-layer .item()": ItemStats,
    "fastai ActivationStats": FastaiStats,
    "floor: one read": OneRead,
}


class FFN(nn.Module):
    """A transformer feed-forward block on batch x tokens x features."""

    def __init__(self, width: int = 512, hidden: int = 2048) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up = nn.Linear(width, hidden)
        self.act = nn.ReLU()
        self.down = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.act(self.up(self.norm(x))))


def deep_mlp(width: int = 512, depth: int = 12) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[], nn.Module]
    shape: tuple[int, ...]


WORKLOADS = [
    Workload("resnet18", lambda: torchvision.models.resnet18(), (16, 3, 160, 160)),
    Workload("resnet50", lambda: torchvision.models.resnet50(), (8, 3, 160, 160)),
    Workload("resnet50 b16", lambda: torchvision.models.resnet50(), (16, 3, 160, 160)),
    Workload("mobilenet_v2", lambda: torchvision.models.mobilenet_v2(), (16, 3, 160, 160)),
    Workload("transformer FFN", lambda: nn.Sequential(FFN(), FFN()), (16, 128, 512)),
    Workload("deep MLP", deep_mlp, (256, 512)),
]


CLOCK = time.perf_counter


def run_once(model: nn.Module, x: torch.Tensor, train: bool) -> float:
    start = CLOCK()
    if train:
        model(x).float().sum().backward()
    else:
        with torch.inference_mode():
            model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return CLOCK() - start


def median_ratios(model: nn.Module, x: torch.Tensor, train: bool, pairs: int) -> list[float]:
    """Per recorder, the median over interleaved (plain, recorded) pairs of recorded / plain time.

    The recorders take turns within each round (plain, deadcheck, plain, hook,
    ...), so a slow phase of the machine hits every column alike, and each
    round starts one recorder later, so that no column keeps the first place. One
    recorder of each kind stays alive across rounds, attached only around its
    recorded run (attaching is outside the timed region): steady state, as in
    a training loop or a long scan.
    """
    watchers = [make(model) for make in RECORDERS.values()]
    ratios: list[list[float]] = [[] for _ in watchers]
    for i in range(pairs + 2):
        # Each round starts one recorder later: on a short pass the first pair of a round
        # measured up to 0.1 apart from the same recorder later in the round (the deep MLP),
        # so every recorder takes every place in turn.
        start = i % len(watchers)
        order = list(range(start, len(watchers))) + list(range(start))
        for index in order:
            watcher, kept = watchers[index], ratios[index]
            plain = run_once(model, x, train)
            watcher.attach()
            try:
                recorded = run_once(model, x, train)
            finally:
                watcher.detach()
            if i >= 2:  # the first two rounds warm up
                kept.append(recorded / plain)
    return [statistics.median(kept) for kept in ratios]


def memory_flatness() -> tuple[int, int, int, int]:
    """Counter bytes and process RSS growth after 10 and after 1,000 batches of a small model."""
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU()).eval()
    x = torch.randn(32, 64)

    def rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    results = []
    for batches in (10, 1000):
        gc.collect()
        before = rss()
        with torch.no_grad(), deadcheck.record(model) as rec:
            for _ in range(batches):
                model(x)
            held = rec.counter_bytes()
        gc.collect()
        results += [held, rss() - before]
    return results[0], results[1], results[2], results[3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs, resnet18 only")
    parser.add_argument("--only", help="run one workload by name")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--opt-in", action="store_true", help="also time each opt-in statistic (a column each)"
    )
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: process CPU time, which ignores time stolen by other virtual machines",
    )
    args = parser.parse_args()
    if args.opt_in:
        RECORDERS.update(OPT_IN)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    pairs = args.pairs or (5 if args.quick else 21)
    workloads = [w for w in WORKLOADS if args.only in (None, w.name)]
    if args.quick and not args.only:
        workloads = workloads[:1]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if "model name" in ln), cpu)
    print(f"date: {datetime.date.today()}  torch {torch.__version__}  threads {args.threads}")
    print(f"cpu: {cpu}" + (f"  cuda: {torch.cuda.get_device_name()}" if "cuda" in devices else ""))
    print(f"counting: {kernel.status()}")
    print(
        f"median of {pairs} interleaved pairs, recorded / plain {args.clock} time (1.00 = free)\n"
    )
    header = f"{'workload':<18}{'device':<7}{'mode':<10}" + "".join(
        f"{name:>24}" for name in RECORDERS
    )
    print(header)
    print("-" * len(header))
    for device in devices:
        for workload in workloads:
            model = workload.build().to(device).eval()
            x = torch.randn(workload.shape, device=device)
            for mode in ("inference", "training"):
                train = mode == "training"
                model.train(train)
                cells = median_ratios(model, x, train, pairs)
                print(
                    f"{workload.name:<18}{device:<7}{mode:<10}"
                    + "".join(f"{c:>24.3f}" for c in cells),
                    flush=True,
                )
    held10, rss10, held1000, rss1000 = memory_flatness()
    print(
        f"\nmemory: counters hold {held10} bytes after 10 batches and {held1000} after 1,000; "
        f"process RSS grew {rss10 / 2**20:.1f} MiB and {rss1000 / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    main()
