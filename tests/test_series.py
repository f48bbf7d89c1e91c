"""Checkpoint series: the same batches through each checkpoint, in numeric order, and the trend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import deadcheck
from deadcheck.cli import main
from deadcheck.workflows.series import expand_checkpoints, scan_series

ROOT = Path(__file__).resolve().parent.parent
TARGET = str(ROOT / "tests" / "targets" / "series_mlp.py")


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    """Three checkpoints of a run in which the second ReLU layer dies: 0, 4 and 8 of 8 units.


    The deaths are planted (biases of -100), so the figures are exact on every CPU.
    """
    loaded = deadcheck.load_target(TARGET)
    for epoch, dead in ((1, 0), (2, 4), (10, 8)):
        model = loaded.model
        state = {k: v.clone() for k, v in model.state_dict().items()}
        state["2.bias"][:dead] = -100.0
        state["2.bias"][dead:] = 100.0  # the others fire on every input
        torch.save(state, tmp_path / f"epoch-{epoch}.pt")
    return tmp_path


def test_checkpoints_sort_by_the_numbers_in_their_names(checkpoints: Path) -> None:
    found = expand_checkpoints([str(checkpoints / "epoch-*.pt")])
    assert [Path(p).name for p in found] == ["epoch-1.pt", "epoch-2.pt", "epoch-10.pt"]


def test_the_series_shows_the_rise_and_flags_it(checkpoints: Path) -> None:
    series = scan_series(TARGET, [str(checkpoints / "epoch-*.pt")])
    assert series.dead_shares()["3"] == [0.0, 0.5, 1.0]
    assert [(f.code, f.site) for f in series.findings] == [("rising-dead-fraction", "3")]
    assert series.fails("warning")
    assert [r.samples for r in series.reports] == [32, 32, 32]  # the same batches each time
    data = series.to_dict()
    assert data["schema"] == "deadcheck.workflows.series/1" and len(data["reports"]) == 3


def test_scan_takes_a_glob_or_repeated_weights(checkpoints: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    glob_args = ["scan", TARGET, "--weights", str(checkpoints / "epoch-*.pt")]
    result = runner.invoke(main, [*glob_args, "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [Path(c).name for c in data["checkpoints"]] == [
        "epoch-1.pt",
        "epoch-2.pt",
        "epoch-10.pt",
    ]
    repeated = []
    for name in ("epoch-10.pt", "epoch-1.pt", "epoch-2.pt"):
        repeated += ["--weights", str(checkpoints / name)]
    result = runner.invoke(main, ["scan", TARGET, *repeated, "--fail-on", "warning"])
    assert result.exit_code == 1  # the rising trend is a warning
    lines = result.stdout.splitlines()
    assert "  WARNING rising-dead-fraction  3" in lines
    row = next(line for line in lines if line.startswith("3 "))
    assert row.split() == ["3", "0%", "50%", "100%"]
    plot = tmp_path / "series.png"
    tb = tmp_path / "tb"
    result = runner.invoke(main, [*glob_args, "--plot", str(plot), "--tensorboard", str(tb)])
    assert result.exit_code == 0 and plot.read_bytes()[:4] == b"\x89PNG"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tb))
    events.Reload()
    steps = [(e.step, e.value) for e in events.Scalars("deadcheck/dead_fraction/3")]
    assert steps == [(0, 0.0), (1, 0.5), (2, 1.0)]


def test_swap_and_recycle_take_one_checkpoint(checkpoints: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "swap",
            TARGET,
            "--weights",
            str(checkpoints / "epoch-*.pt"),
            "--to",
            "prelu",
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "takes one checkpoint" in result.stderr
