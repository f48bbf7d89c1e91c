"""Under torch.distributed, merged counts equal one process over the union of the data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import deadcheck

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2


def build() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(5),
        nn.PReLU(5),
    )
    with torch.no_grad():
        model[0].bias[:2] = -100.0
    model(torch.zeros(1, 3, 6, 6))  # materialise the lazy layer
    return model.eval()


def data() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(3, 3, 6, 6, generator=generator) for _ in range(6)]


def record(batches: list[torch.Tensor]) -> dict:
    model = build()
    # margins: a max-reduced state, merged by its own all_reduce (MAX), exactly
    with torch.no_grad(), deadcheck.record(model, margins=True) as rec:
        for batch in batches:
            model(batch)
    return rec.stats().to_dict()


def _worker(rank: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        stats = record(data()[rank::WORLD])
        Path(f"{out}.{rank}").write_text(json.dumps(stats))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_merge_to_the_single_process_counts(tmp_path: Path) -> None:
    out = str(tmp_path / "stats")
    mp.spawn(_worker, args=(str(tmp_path / "init"), out), nprocs=WORLD, join=True)
    single = record(data())
    for rank in range(WORLD):
        merged = json.loads(Path(f"{out}.{rank}").read_text())
        assert merged == single  # every rank gets the total
    assert single["samples"] == 18
    assert single["sites"][0]["zeros"][:2] == [18 * 16, 18 * 16]  # planted dead channels
    margins = single["sites"][0]["max_input"]
    assert all(m < 0 for m in margins[:2]) and all(m > 0 for m in margins[2:])  # merged by MAX


def test_torchrun_scan_splits_batches_and_reports_once() -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run"]  # torchrun, for this very Python
    target = "tests/targets/planted.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            *cmd,
            "--standalone",
            "--nproc-per-node",
            str(WORLD),
            "-m",
            "deadcheck",
            "scan",
            target,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    merged = json.loads(done.stdout)  # rank 0 alone writes: stdout is one JSON document
    alone = subprocess.run(
        [sys.executable, "-m", "deadcheck", "scan", target, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    )
    assert merged == json.loads(alone.stdout)
