"""deadcheck on a GPU: the CUDA tests, no host synchronisation, and overhead ratios side by side.

Run on a machine with a CUDA device: ``python benchmarks/gpu.py`` (under five
minutes on one GPU; ``--pairs`` for fewer or more interleaved pairs). It

1. runs the CUDA tests (``tests/test_gpu_kernel.py``, ``tests/test_recording.py -k cuda``);
2. records ResNet-50 under ``torch.cuda.set_sync_debug_mode("error")``: a
   recorded forward pass that made the host wait for the device would raise;
3. prints, for each workload, the median over interleaved pairs of
   time(recorded) / time(plain), for deadcheck (Triton kernel), deadcheck with
   pure-torch counting, the peers of ``benchmarks/run.py`` and the one-read floor:
   ResNet-50 in bf16 at batch 64, and an LLM-shaped stack of 24 ReLU FFN layers
   of width 4096 at 2 x 1024 tokens in bf16.

The figures go into docs/performance.md with the date and the device.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

import deadcheck
from deadcheck.recording import gpu_kernel, kernel

ROOT = Path(__file__).resolve().parent.parent


def _peers() -> Any:
    spec = importlib.util.spec_from_file_location("deadcheck_bench", ROOT / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class PureTorchGPU:
    """deadcheck with both kernels off: what a GPU user without Triton gets."""

    def __init__(self, model: nn.Module) -> None:
        self.recorder = deadcheck.Recorder(model)
        self.off = contextlib.ExitStack()

    def attach(self) -> None:
        self.off.enter_context(kernel.disabled())
        self.off.enter_context(gpu_kernel.disabled())
        self.recorder.attach()

    def detach(self) -> None:
        self.recorder.detach()
        self.off.close()


class FFNStack(nn.Module):
    """24 ReLU FFN layers of width 4096 on a model width of 1024: an LLM's MLPs, no attention."""

    def __init__(self, layers: int = 24, width: int = 1024, hidden: int = 4096) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def _timed(model: nn.Module, x: torch.Tensor) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model(x)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def ratio(model: nn.Module, x: torch.Tensor, make: Any, pairs: int) -> float:
    recorder = make(model)
    ratios = []
    for i in range(pairs + 2):
        plain = _timed(model, x)
        recorder.attach()
        try:
            recorded = _timed(model, x)
        finally:
            recorder.detach()
        if i >= 2:  # two warm-up pairs
            ratios.append(recorded / plain)
    return statistics.median(ratios)


def no_host_sync(model: nn.Module, x: torch.Tensor) -> str:
    """Recorded passes under sync debug mode "error": any host wait raises."""
    with torch.no_grad(), deadcheck.record(model.eval()) as rec:
        model(x)  # the first pass finds the sites
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                model(x)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    rec.stats()  # reading results waits, as it must
    return "no host synchronisation in 3 recorded passes"


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA device")
    device = torch.cuda.get_device_name()
    print(f"{datetime.date.today()}  {device}  torch {torch.__version__}")
    print(f"Triton kernel: {'on' if gpu_kernel.available() else 'off (no Triton)'}")
    if not args.skip_tests:
        tests = ["tests/test_gpu_kernel.py", "tests/test_recording.py", "-k", "cuda or triton"]
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", *tests], cwd=ROOT)
        print(f"CUDA tests: {'passed' if done.returncode == 0 else 'FAILED'}")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50().cuda().to(torch.bfloat16).eval()
    images = torch.randn(64, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
    print(no_host_sync(resnet, images))
    ffn = FFNStack().cuda().to(torch.bfloat16).eval()
    tokens = torch.randn(2, 1024, 1024, device="cuda", dtype=torch.bfloat16)
    peers = _peers()
    recorders = {
        "deadcheck": deadcheck.Recorder,
        "deadcheck pure torch": PureTorchGPU,
        **{
            k: v
            for k, v in peers.RECORDERS.items()
            if k not in ("deadcheck", "deadcheck pure torch")
        },
    }
    workloads = {"resnet50 bf16 b64": (resnet, images), "FFN 24x4096 bf16 2x1024": (ffn, tokens)}
    names = list(recorders)
    print(f"{'workload':<26}" + "".join(f"{n[:22]:>24}" for n in names))
    for label, (model, x) in workloads.items():
        cells = [ratio(model, x, recorders[n], args.pairs) for n in names]
        print(f"{label:<26}" + "".join(f"{c:>24.3f}" for c in cells))


if __name__ == "__main__":
    main()
