"""Write a report to TensorBoard: each statistic's scalars and histograms, a heatmap, findings.

Tags all start with ``deadcheck/``. A scan writes one step; the Monitor
writes one step per snapshot into the same tags, so the charts become time
series. :func:`open_writer` is the one place a writer is made, with the
dashboard's layout, which comes from the statistics' declared scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deadcheck.core.findings import SEVERITIES
from deadcheck.output.plotting import heatmap_note, heatmap_rgb
from deadcheck.results.display import findings_markdown
from deadcheck.results.report import Report
from deadcheck.stats import STATS

__all__ = [
    "custom_layout",
    "has_events",
    "log_report",
    "open_writer",
    "report_scalars",
    "write_reports",
    "write_tensorboard",
]


def custom_layout() -> dict[str, Any]:
    """The custom-scalars layout that groups deadcheck's charts: one per declared scalar."""
    charts = {
        scalar.title: ["Multiline", [rf"deadcheck/{scalar.key}/.*"]]
        for stat in STATS
        for scalar in stat.scalars
    }
    charts["findings by severity"] = ["Multiline", [r"deadcheck/findings/.*"]]
    return {"deadcheck": charts}


def open_writer(log_dir: str | Path) -> Any:
    """A ``SummaryWriter`` on ``log_dir`` that already holds deadcheck's layout."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    writer.add_custom_scalars(custom_layout())
    return writer


def report_scalars(report: Report) -> dict[str, float]:
    """The report's headline figures by tag: what a trainer's logger (CSV, W&B, MLflow) gets.

    ``deadcheck/<scalar>/<site>`` for every declared per-site scalar, and
    ``deadcheck/findings/<severity>`` counts: the same tags TensorBoard shows.
    """
    values: dict[str, float] = {}
    for site in report.sites:
        for stat in STATS:
            for scalar in stat.scalars:
                value = scalar.value(site)
                if value is not None:
                    values[f"deadcheck/{scalar.key}/{site.name}"] = float(value)
    for severity in SEVERITIES:
        values[f"deadcheck/findings/{severity}"] = float(
            sum(f.severity is severity for f in report.findings)
        )
    return values


def log_report(writer: Any, report: Report, step: int = 0, *, heatmap: bool = True) -> None:
    """Log ``report`` to a ``SummaryWriter`` (or anything with its methods) at ``step``."""
    for tag, value in report_scalars(report).items():
        writer.add_scalar(tag, value, step)
    for site in report.sites:
        for stat in STATS:
            for histogram in stat.histograms:
                values = histogram.values(site)
                if not values:
                    continue
                bins: Any = "tensorflow"
                if histogram.bins is not None:
                    low, high, count = histogram.bins
                    bins = np.linspace(low, high, count)
                tag = f"deadcheck/{histogram.key}/{site.name}"
                writer.add_histogram(tag, np.asarray(values), step, bins=bins)
    text = findings_markdown(report.findings) if report.findings else "no findings"
    writer.add_text("deadcheck/findings", text, step)
    if heatmap and report.sites:
        writer.add_image(
            "deadcheck/zero_fraction_heatmap", heatmap_rgb(report), step, dataformats="HWC"
        )
        note = heatmap_note(report)
        if note:  # what the bounded heatmap binned or left out
            writer.add_text("deadcheck/zero_fraction_heatmap_note", note, step)


def has_events(log_dir: str | Path) -> bool:
    """Whether ``log_dir`` already holds TensorBoard event files (a run a new scan would join)."""
    folder = Path(log_dir)
    return folder.is_dir() and any(folder.rglob("events.out.tfevents.*"))


def write_tensorboard(report: Report, log_dir: str | Path, step: int = 0) -> Path:
    """Write ``report`` as one step of event files in ``log_dir``, with the grouped layout."""
    return write_reports([report], log_dir, first_step=step)


def write_reports(reports: Sequence[Report], log_dir: str | Path, first_step: int = 0) -> Path:
    """Write ``reports`` as consecutive steps (a checkpoint series: one step per checkpoint)."""
    writer = open_writer(log_dir)
    try:
        for step, report in enumerate(reports, start=first_step):
            log_report(writer, report, step)
    finally:
        writer.close()
    return Path(log_dir)
