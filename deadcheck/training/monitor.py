"""Watch units die while a model trains: periodic snapshots, TensorBoard, trend flags.

``Monitor`` keeps a recorder attached to the model. ``step()`` after each
optimiser step only counts steps; every ``every`` steps a snapshot reads the
counters of the window since the last one (one host transfer, one all_reduce
under torch.distributed), logs them, keeps their history and resets the
window. "Dead" during training therefore means dead over the recent window.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from deadcheck.analysis.judging import analyze
from deadcheck.analysis.trends import Trend, rising_findings
from deadcheck.core.options import RecordingKwargs, RecordingOptions
from deadcheck.core.thresholds import Thresholds
from deadcheck.output.tensorboard import custom_layout, log_report, open_writer
from deadcheck.recording.distributed import rank
from deadcheck.recording.recorder import Recorder
from deadcheck.results.report import Report
from deadcheck.results.stats import Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Monitor", "Snapshot", "Trend"]


@dataclass(frozen=True)
class Snapshot:
    """One window's figures: its report, and the counts it was judged from."""

    step: int
    report: Report
    stats: Stats | None = None

    def __repr__(self) -> str:
        return f"Snapshot(step {self.step}: {self.report!r})"

    def _repr_html_(self) -> str:
        return f"<p>step {self.step}</p>" + self.report._repr_html_()


class Monitor:
    """Log dead units over training to TensorBoard and flag layers whose dead share keeps rising.

    >>> monitor = deadcheck.Monitor(model, log_dir="runs/x", every=100)
    >>> for batch in loader:
    ...     loss(model(batch)).backward(); optimizer.step()
    ...     monitor.step()
    >>> monitor.close()

    Unlike :func:`~deadcheck.recording.recorder.record`, which attaches when its
    ``with`` block starts, a Monitor attaches when it is made: a training loop
    keeps it across many steps, often without a ``with`` block. ``close()``
    (or leaving its ``with`` block) detaches it.

    ``writer`` takes an existing ``SummaryWriter`` (left open on close);
    ``log_dir`` makes one (closed on close); with neither, nothing is logged
    and the history is still kept. ``thresholds`` go to
    :func:`~deadcheck.analysis.judging.analyze`. Recording options
    (``options=`` or their keywords: ``activations``, ``dormant_sums``,
    ``training_only`` ...) are :func:`~deadcheck.recording.recorder.record`'s;
    ``training_only=True`` leaves evaluation inside the loop out. ``recorder``
    shares a recorder already attached to the model (the framework callbacks
    share one with their Recycler).
    """

    def __init__(
        self,
        model: nn.Module,
        log_dir: str | Path | None = None,
        *,
        writer: Any = None,
        every: int = 100,
        trend: Trend = Trend(),
        heatmap: bool = True,
        thresholds: Thresholds | None = None,
        options: RecordingOptions | None = None,
        recorder: Recorder | None = None,
        **kwargs: Unpack[RecordingKwargs],
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        if writer is not None and log_dir is not None:
            raise ValueError("pass log_dir or writer, not both")
        self.thresholds = thresholds or Thresholds()
        self.every = every
        self.trend = trend
        self.heatmap = heatmap
        self.history: list[Snapshot] = []
        self._steps = 0
        self._own_writer = False
        self._layout_added = False
        self._writer = writer
        self._log_dir = log_dir
        if recorder is not None and (options is not None or kwargs):
            raise ValueError("pass a recorder or recording options, not both")
        #: Shared with a Recycler when given (the callbacks do): one set of hooks per model.
        self._own_recorder = recorder is None
        self._recorder = recorder or Recorder(model, options, **kwargs)
        if not self._recorder.attached:
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
            self._writer = open_writer(self._log_dir)
            self._own_writer = True
        return self._writer if self._is_main() else None

    @staticmethod
    def _is_main() -> bool:
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
        report = analyze(stats, self.thresholds)
        rising = rising_findings([*(s.report for s in self.history), report], self.trend)
        if rising:
            report = replace(report, findings=report.findings + rising)
        snapshot = Snapshot(step=self._steps, report=report, stats=stats)
        self.history.append(snapshot)
        writer = self._ensure_writer()
        if writer is not None:
            if not self._own_writer and not self._layout_added:
                # A writer of the trainer's: it gets the grouped layout once, as ours do.
                add = getattr(writer, "add_custom_scalars", None)
                if add is not None:
                    add(custom_layout())
                self._layout_added = True
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
