"""Monitor: windows, history, trend flags and TensorBoard logs over training."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

import deadcheck
from deadcheck.analysis.trends import Trend, rising_sites
from tests.helpers import linear

X = torch.linspace(-1, 1, 8).reshape(8, 1)  # half the inputs positive


def ten_units() -> nn.Sequential:
    """Ten copies of x -> relu(x): each alive on the positive half of X."""
    return nn.Sequential(linear([[1.0]] * 10, [0.0] * 10), nn.ReLU())


def kill(model: nn.Sequential, units: int) -> None:
    with torch.no_grad():
        model[0].bias[:units] = -100.0


TREND_CASES = [
    ("steady-rise", [0.0, 0.2, 0.4, 0.6, 0.8], True),
    ("rise-with-one-dip", [0.0, 0.2, 0.1, 0.3, 0.4], True),
    ("two-dips-is-noise", [0.0, 0.2, 0.1, 0.3, 0.2], False),
    ("flat", [0.5, 0.5, 0.5, 0.5, 0.5], False),
    ("small-rise", [0.0, 0.02, 0.04, 0.06, 0.08], False),
    ("falling", [0.8, 0.6, 0.4, 0.2, 0.0], False),
    ("too-short", [0.0, 0.5, 1.0], False),
    ("only-the-last-window-counts", [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], False),
]


@pytest.mark.parametrize(
    ("series", "rising"), [c[1:] for c in TREND_CASES], ids=[c[0] for c in TREND_CASES]
)
def test_rising_dead_fraction_rule(series: list[float], rising: bool) -> None:
    history = [{"s": v} for v in series]
    assert ("s" in rising_sites(history, Trend())) is rising


def test_snapshots_cover_their_window_and_flag_a_rising_site(tmp_path: Path) -> None:
    model = ten_units()
    with deadcheck.Monitor(model, log_dir=tmp_path, every=3) as monitor:
        for window, dead in enumerate([0, 2, 4, 6, 8]):
            kill(model, dead)
            for _ in range(3):
                model(X)
                snapshot = monitor.step()
            assert snapshot is not None and snapshot.step == 3 * (window + 1)
            layer = snapshot.report.site("1")
            assert layer.positions == 3 * 8  # this window only: counters were reset
            assert layer.dead_fraction == dead / 10
        report = monitor.report()
    codes = [(f.code, f.site) for f in report.findings]
    assert ("rising-dead-fraction", "1") in codes
    rising = next(f for f in report.findings if f.code == "rising-dead-fraction")
    assert rising.message.endswith("0% -> 20% -> 40% -> 60% -> 80%")
    assert rising.units == tuple(range(8))
    assert [s.step for s in monitor.history] == [3, 6, 9, 12, 15]
    assert not any(len(m._forward_hooks) for m in model.modules())  # closed: detached

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    dead = [(e.step, round(e.value, 6)) for e in events.Scalars("deadcheck/dead_fraction/1")]
    assert dead == [(3, 0.0), (6, 0.2), (9, 0.4), (12, 0.6), (15, 0.8)]
    warnings = [e.value for e in events.Scalars("deadcheck/findings/warning")]
    assert warnings == [0, 0, 0, 1, 2]  # dying from 60%; rising too at the fifth snapshot
    assert "deadcheck/zero_fraction/1" in events.Tags()["histograms"]
    assert "deadcheck/zero_fraction_heatmap" in events.Tags()["images"]


def test_step_between_snapshots_reads_nothing_from_the_device(monkeypatch) -> None:
    model = ten_units()
    monitor = deadcheck.Monitor(model, every=5)
    reads = []
    original = monitor.recorder.stats
    monkeypatch.setattr(monitor.recorder, "stats", lambda **kw: reads.append(1) or original(**kw))
    for _ in range(9):
        model(X)
        monitor.step()
    monitor.close()
    assert reads == [1]  # only at step 5


def test_paused_forward_passes_are_not_counted() -> None:
    model = ten_units()
    with deadcheck.Monitor(model, every=1) as monitor:
        model(X)
        with monitor.paused():
            model(X)
        assert monitor.step().report.site("1").positions == 8


def test_prelu_slopes_are_logged_over_time(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 4), nn.PReLU(4), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    writer = SummaryWriter(str(tmp_path))
    with deadcheck.Monitor(model, writer=writer, every=2) as monitor:
        for _ in range(6):
            loss = (model(X) - X.abs()).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step()
    writer.add_scalar("mine", 1.0, 0)  # the user's writer stays open
    writer.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    slopes = [e.value for e in events.Scalars("deadcheck/slope_mean/1")]
    assert len(slopes) == 3 and slopes[0] != slopes[-1]
    assert [e.step for e in events.Scalars("deadcheck/slope_mean/1")] == [2, 4, 6]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every"):
        deadcheck.Monitor(ten_units(), every=0)
    with pytest.raises(ValueError, match="window"):
        Trend(window=1)
    model = ten_units()
    with pytest.raises(ValueError, match="dying"):
        deadcheck.Monitor(model, thresholds=deadcheck.Thresholds(dying=2.0))
    with pytest.raises(ValueError, match="activations"):
        deadcheck.Monitor(model, activations="bogus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dying"):
        deadcheck.Monitor(model, dying=0.5)  # type: ignore[call-arg]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
