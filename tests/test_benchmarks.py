"""The benchmark script runs (its timings are never asserted: only that it works)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from deadcheck.recording import kernel

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("deadcheck_bench", ROOT / "benchmarks" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_recorder_gives_a_ratio_and_leaves_no_hooks() -> None:
    bench = load_benchmark()
    was_active = kernel.active()
    model = bench.deep_mlp(width=8, depth=2)
    x = torch.randn(4, 8)
    for train in (False, True):
        cells = bench.median_ratios(model, x, train, pairs=1)
        assert len(cells) == len(bench.RECORDERS)
        assert all(c > 0 for c in cells)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert kernel.active() == was_active  # the pure-torch column puts the kernel back


def test_memory_stays_flat() -> None:
    bench = load_benchmark()
    held10, _, held1000, _ = bench.memory_flatness()
    assert held10 == held1000 > 0
