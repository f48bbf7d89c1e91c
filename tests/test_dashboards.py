"""A scan's TensorBoard events and PNG, read back with TensorBoard's own reader and server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deadcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def scanned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    logs = tmp_path / "tb"
    args = ["scan", "tests/targets/planted.py", "--tensorboard", str(logs)]
    result = CliRunner().invoke(main, [*args, "--plot", str(tmp_path / "scan.png")])
    assert result.exit_code == 0, result.stderr
    return tmp_path


def test_event_files_hold_every_chart(scanned: Path) -> None:
    events = EventAccumulator(str(scanned / "tb"), size_guidance={"tensors": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {t: events.Scalars(t)[0].value for t in tags["scalars"]}
    assert scalars["deadcheck/dead_fraction/act1"] == 0.5
    assert scalars["deadcheck/dead_fraction/act2"] == 1.0
    assert scalars["deadcheck/zero_fraction_mean/act1"] == 0.75
    assert scalars["deadcheck/slope_mean/act3"] == pytest.approx(0.9)
    assert scalars["deadcheck/findings/error"] == 1
    assert scalars["deadcheck/findings/warning"] == 3  # dying act1, linear and near-linear act3
    assert scalars["deadcheck/linear_fraction/act3"] == 1.0
    assert all(t.startswith("deadcheck/") for t in tags["scalars"])
    histograms = set(tags["histograms"])
    assert {"deadcheck/zero_fraction/act1", "deadcheck/slope/act3"} <= histograms
    act1 = events.Histograms("deadcheck/zero_fraction/act1")[0].histogram_value
    assert (act1.num, act1.min, act1.max) == (4, 0.5, 1.0)
    image = events.Images("deadcheck/zero_fraction_heatmap")[0]
    assert (image.width, image.height) == (4, 3 * 4)  # 4 units wide, 3 sites x 4 px
    text = events.Tensors("deadcheck/findings/text_summary")[0]
    assert b"dead-layer" in text.tensor_proto.string_val[0]
    layout = events.Tensors("custom_scalars__config__")
    assert layout  # the grouped layout


def test_a_second_scan_into_a_run_needs_its_step(scanned: Path) -> None:
    args = ["scan", "tests/targets/planted.py", "--tensorboard", str(scanned / "tb")]
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already holds a run: give --step N" in again.stderr
    stepped = CliRunner().invoke(main, [*args, "--step", "5"])
    assert stepped.exit_code == 0, stepped.stderr
    events = EventAccumulator(str(scanned / "tb"))
    events.Reload()
    steps = [e.step for e in events.Scalars("deadcheck/dead_fraction/act1")]
    assert sorted(steps) == [0, 5]  # one point per scan, none piled onto step 0


def test_plot_is_a_png(scanned: Path) -> None:
    data = (scanned / "scan.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_server_serves_the_scalar_series(scanned: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(scanned / "tb"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = urllib.parse.urlencode({"run": ".", "tag": "deadcheck/dead_fraction/act2"})
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    series = json.loads(response.read())
                if series:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorboard did not serve the series in 60 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=20)
    (_, step, value) = series[0]
    assert (step, value) == (0, 1.0)
