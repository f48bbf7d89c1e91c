"""Watch units die while a model trains: periodic snapshots, TensorBoard, trend flags.

``Monitor`` keeps a recorder attached to the model. ``step()`` after each
optimiser step only counts steps; every ``every`` steps a snapshot reads the
counters of the window since the last one (one host transfer, one all_reduce
under torch.distributed), logs them, keeps their history and resets the
window. "Dead" during training therefore means dead over the recent window.
"""

from __future__ import annotations

import itertools
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from deadcheck.analysis import Finding, Report, Thresholds, analyze
from deadcheck.recording import Recorder

__all__ = ["Monitor", "Snapshot", "Trend", "rising_sites"]


@dataclass(frozen=True)
class Trend:
    """When a dead share "keeps rising". Defaults and why:

    * ``window=5`` snapshots: long enough that one noisy window cannot make
      a trend, short enough to warn while there is time to act;
    * ``min_rise=0.1``: the share must climb at least 10 points of the
      site's units from the window's first snapshot to its last;
    * ``max_dips=1``: one step down inside the window is tolerated as noise;
      more means the share is wandering, not rising.
    """

    window: int = 5
    min_rise: float = 0.1
    max_dips: int = 1

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"trend window must be at least 2 snapshots, got {self.window}")


def rising_sites(history: Sequence[Mapping[str, float]], trend: Trend = Trend()) -> dict[str, str]:
    """Sites whose dead share rose over the last ``trend.window`` snapshots, with a message.

    A site is rising when, over the window, its dead share (a) has a positive
    least-squares slope, (b) ends at least ``min_rise`` above where it began,
    and (c) falls between consecutive snapshots at most ``max_dips`` times.
    """
    if len(history) < trend.window:
        return {}
    recent = history[-trend.window :]
    rising: dict[str, str] = {}
    for name in recent[-1]:
        values = [snap.get(name) for snap in recent]
        if any(v is None for v in values):
            continue
        series = [float(v) for v in values if v is not None]
        n = len(series)
        mean_x, mean_y = (n - 1) / 2, sum(series) / n
        slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(series)) / sum(
            (i - mean_x) ** 2 for i in range(n)
        )
        dips = sum(b < a for a, b in itertools.pairwise(series))
        if slope > 0 and series[-1] - series[0] >= trend.min_rise and dips <= trend.max_dips:
            path = " -> ".join(f"{100 * v:.0f}%" for v in series)
            rising[name] = f"dead share rose over the last {n} snapshots: {path}"
    return rising


@dataclass(frozen=True)
class Snapshot:
    """One window's figures."""

    step: int
    report: Report


class Monitor:
    """Log dead units over training to TensorBoard and flag layers whose dead share keeps rising.

    >>> monitor = deadcheck.Monitor(model, log_dir="runs/x", every=100)
    >>> for batch in loader:
    ...     loss(model(batch)).backward(); optimizer.step()
    ...     monitor.step()
    >>> monitor.close()

    Unlike :func:`~deadcheck.recording.record`, which attaches when its
    ``with`` block starts, a Monitor attaches when it is made: a training loop
    keeps it across many steps, often without a ``with`` block. ``close()``
    (or leaving its ``with`` block) detaches it.

    ``writer`` takes an existing ``SummaryWriter`` (left open on close);
    ``log_dir`` makes one (closed on close); with neither, nothing is logged
    and the history is still kept. Thresholds (``dying=`` ...) go to
    :func:`~deadcheck.analysis.analyze`. ``activations`` and ``dormant`` are
    :func:`~deadcheck.recording.record`'s; ``training_only`` counts only forward
    passes made in training mode, so evaluation inside the loop is left out.
    """

    def __init__(
        self,
        model: nn.Module,
        log_dir: str | Path | None = None,
        *,
        writer: Any = None,
        every: int = 100,
        trend: Trend = Trend(),
        unit_axis: Mapping[str, int] | None = None,
        heatmap: bool = True,
        activations: str = "relu",
        dormant: bool = False,
        training_only: bool = False,
        **thresholds: float,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if writer is not None and log_dir is not None:
            raise ValueError("pass log_dir or writer, not both")
        self._thresholds = Thresholds(**thresholds)  # fail now, before touching the model
        self.every = every
        self.trend = trend
        self.thresholds = thresholds
        self.heatmap = heatmap
        self.history: list[Snapshot] = []
        self._dead_history: list[dict[str, float]] = []
        self._steps = 0
        self._own_writer = False
        self._writer = writer
        self._log_dir = log_dir
        self._recorder = Recorder(
            model,
            unit_axis=unit_axis,
            activations=activations,
            dormant=dormant,
            training_only=training_only,
        )
        self._recorder.attach()

    @property
    def steps(self) -> int:
        """Steps counted so far."""
        return self._steps

    @property
    def recorder(self) -> Recorder:
        return self._recorder

    def _ensure_writer(self) -> Any:
        if self._writer is None and self._log_dir is not None and self._is_main():
            from torch.utils.tensorboard import SummaryWriter

            from deadcheck.tensorboard import custom_layout

            self._writer = SummaryWriter(log_dir=str(self._log_dir))
            self._writer.add_custom_scalars(custom_layout())
            self._own_writer = True
        return self._writer if self._is_main() else None

    @staticmethod
    def _is_main() -> bool:
        from deadcheck.distributed import rank

        return rank() == 0

    def step(self) -> Snapshot | None:
        """Count one training step; every ``every`` steps take a snapshot and return it."""
        self._steps += 1
        if self._steps % self.every == 0:
            return self.snapshot()
        return None

    def snapshot(self) -> Snapshot:
        """Read and reset the current window now: log it and add it to the history.

        Under torch.distributed every rank must reach this together (``step()``
        does, when every rank steps alike); rank 0 writes the logs.
        """
        stats = self._recorder.stats()
        self._recorder.reset()
        report = analyze(stats, self._thresholds)
        self._dead_history.append({layer.name: layer.dead_fraction for layer in report.sites})
        rising = rising_sites(self._dead_history, self.trend)
        if rising:
            extra = tuple(
                Finding(
                    "rising-dead-fraction",
                    "warning",
                    name,
                    message,
                    report.site(name).dead_units,
                )
                for name, message in rising.items()
            )
            report = replace(report, findings=report.findings + extra)
        snapshot = Snapshot(step=self._steps, report=report)
        self.history.append(snapshot)
        writer = self._ensure_writer()
        if writer is not None:
            from deadcheck.tensorboard import log_report

            log_report(writer, report, self._steps, heatmap=self.heatmap)
            writer.flush()
        return snapshot

    def report(self) -> Report | None:
        """The latest snapshot's report, trend findings included (None before the first)."""
        return self.history[-1].report if self.history else None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes inside this block (evaluation, say) are not counted."""
        self._recorder.detach()
        try:
            yield
        finally:
            self._recorder.attach()

    def close(self) -> None:
        """Detach from the model and close the writer this monitor made. Safe to call twice."""
        try:
            self._recorder.detach()
        finally:
            if self._own_writer and self._writer is not None:
                self._writer.close()
                self._writer = None
                self._own_writer = False

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()
