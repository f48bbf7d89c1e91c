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


def test_the_value_read_comparison_runs_and_leaves_no_hooks() -> None:
    """benchmarks/value_read.py: the three ratios of one small model, in both modes."""
    spec = importlib.util.spec_from_file_location(
        "deadcheck_value_read", ROOT / "benchmarks" / "value_read.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    for train in (False, True):
        got = module.compare(model, torch.randn(4, 8), train, pairs=3)
        assert set(got) == {"counts", "default", "direct", "iqr"}
        assert all(v > 0 for k, v in got.items() if k != "iqr") and got["iqr"] >= 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    if kernel.active():
        alone, full = module.kernel_share(model, torch.randn(4, 8), repeats=3)
        assert alone > 0 and full > 0
        module.SHAPES[:] = [("tiny", (2, 3, 4, 4), False), ("tiny-cl", (2, 3, 4, 4), True)]
        rows = module.per_call(repeats=2)
        assert [r[0] for r in rows] == ["tiny", "tiny-cl"] and all(
            t > 0 for r in rows for t in r[1:]
        )
        assert all(not m._forward_hooks for m in model.modules())
