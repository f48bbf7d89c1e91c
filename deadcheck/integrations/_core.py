"""What both framework callbacks do: a Monitor (and a Recycler) over a training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from deadcheck.core import jsontext
from deadcheck.core.errors import InputError
from deadcheck.core.findings import SEVERITIES, Finding, at_or_above
from deadcheck.core.options import RecordingOptions
from deadcheck.core.thresholds import Thresholds
from deadcheck.output.tensorboard import report_scalars
from deadcheck.training.monitor import Monitor, Snapshot
from deadcheck.training.recycler import Recycler

REPORT_NAME = "deadcheck.json"


@dataclass
class Options:
    """The options both callbacks take."""

    every: int = 100
    fail_on: str | None = None
    dormant: float | None = None
    recycle: float | None = None
    recycle_every: int | None = None
    activations: str = "relu"
    thresholds: dict[str, float] = field(default_factory=dict)
    #: Sum the gradient reaching each unit's input in backward (starved units).
    gradients: bool = False

    def __post_init__(self) -> None:
        if self.fail_on is not None and self.fail_on not in SEVERITIES:
            raise InputError(
                f"fail_on must be one of {', '.join(SEVERITIES)}, got {self.fail_on!r}",
                option="fail_on",
            )


class Watch:
    """One training run: one recorder, a Monitor over it, a Recycler on it if asked.

    The Monitor and the Recycler share the recorder, so the model carries one
    set of hooks and both see the same passes (training mode only). The
    Recycler recycles from the Monitor's snapshots: at the first snapshot at
    least ``recycle_every`` steps after the last recycling, from that
    snapshot's window.
    """

    def __init__(self, model: nn.Module, options: Options, *, writer: Any, log_dir: Any) -> None:
        thresholds: dict[str, Any] = dict(options.thresholds)
        if options.dormant is not None:
            thresholds["dormant"] = options.dormant
        self.options = options
        recording = RecordingOptions(
            activations=options.activations,  # type: ignore[arg-type]
            gradients=options.gradients,
            training_only=True,
        )
        self.monitor = Monitor(
            model,
            log_dir=None if writer is not None else log_dir,
            writer=writer,
            every=options.every,
            thresholds=Thresholds(**thresholds),
            options=recording,
        )
        self.recycler: Recycler | None = None
        #: The snapshot the last step took (None: it took none), for the trainer's loggers.
        self.fresh: Snapshot | None = None
        self._model = model
        self._recycled_at = 0

    def start_recycling(self, optimizer: Any) -> None:
        if self.options.recycle is not None and self.recycler is None:
            self.recycler = Recycler(
                self._model,
                optimizer,
                every=self.options.recycle_every or self.options.every,
                tau=self.options.recycle,
                recorder=self.monitor.recorder,
            )

    def step(self) -> Finding | None:
        """Count one training step; the finding that should stop training, if any."""
        snapshot: Snapshot | None = self.monitor.step()
        self.fresh = snapshot
        if snapshot is None:
            return None
        recycler = self.recycler
        due = recycler is not None and snapshot.step - self._recycled_at >= recycler.every
        if recycler is not None and due and snapshot.stats is not None:
            recycler.recycle_from(snapshot.stats)
            self._recycled_at = snapshot.step
        if self.options.fail_on is None:
            return None
        for finding in snapshot.report.findings:
            if at_or_above(finding.severity, self.options.fail_on):
                return finding
        return None

    def finish(self, folder: str | Path | None, *, main: bool = True) -> Path | None:
        """Write the last snapshot's report (taken now if none was) into ``folder``; detach."""
        try:
            if not self.monitor.history or self.monitor.steps % self.options.every:
                self.monitor.snapshot()
            report = self.monitor.report()
            if not main or folder is None or report is None:
                return None
            path = Path(folder) / REPORT_NAME
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(jsontext.dumps(report.to_dict()))
            return path
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.monitor.close()
        finally:
            if self.recycler is not None:
                self.recycler.close()


def figures(snapshot: Snapshot) -> dict[str, float]:
    """What a trainer's loggers get from a snapshot: the headline figures by tag."""
    return report_scalars(snapshot.report)


def stop_message(finding: Finding) -> str:
    return (
        f"deadcheck stopped training: {finding.severity} {finding.code} at {finding.site}: "
        f"{finding.message}"
    )
