"""What both framework callbacks do: a Monitor (and a Recycler) over a training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from deadcheck import jsontext
from deadcheck.analysis import SEVERITIES, Finding
from deadcheck.errors import InputError
from deadcheck.monitoring import Monitor, Snapshot
from deadcheck.recycling import Recycler

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

    def __post_init__(self) -> None:
        if self.fail_on is not None and self.fail_on not in SEVERITIES:
            raise InputError(
                f"fail_on must be one of {', '.join(SEVERITIES)}, got {self.fail_on!r}",
                option="fail_on",
            )


class Watch:
    """One training run: a Monitor over the model, a Recycler if asked, the last report."""

    def __init__(self, model: nn.Module, options: Options, *, writer: Any, log_dir: Any) -> None:
        thresholds: dict[str, Any] = dict(options.thresholds)
        if options.dormant is not None:
            thresholds["dormant"] = options.dormant
        self.options = options
        self.monitor = Monitor(
            model,
            log_dir=None if writer is not None else log_dir,
            writer=writer,
            every=options.every,
            activations=options.activations,
            dormant=options.dormant is not None,
            training_only=True,
            **thresholds,
        )
        self.recycler: Recycler | None = None
        self._model = model

    def start_recycling(self, optimizer: Any) -> None:
        if self.options.recycle is not None and self.recycler is None:
            every = self.options.recycle_every or self.options.every
            self.recycler = Recycler(
                self._model, optimizer, every=every, tau=self.options.recycle, training_only=True
            )

    def step(self) -> Finding | None:
        """Count one training step; the finding that should stop training, if any."""
        snapshot: Snapshot | None = self.monitor.step()
        if self.recycler is not None:
            self.recycler.step()
        if snapshot is None or self.options.fail_on is None:
            return None
        bar = SEVERITIES.index(self.options.fail_on)  # type: ignore[arg-type]
        for finding in snapshot.report.findings:
            if SEVERITIES.index(finding.severity) >= bar:
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


def stop_message(finding: Finding) -> str:
    return (
        f"deadcheck stopped training: {finding.severity} {finding.code} at {finding.site}: "
        f"{finding.message}"
    )
