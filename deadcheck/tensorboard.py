"""Write a report to TensorBoard: scalars, histograms, a heatmap, findings, a layout.

Tags all start with ``deadcheck/``. A scan writes one step; the Monitor writes
one step per snapshot into the same tags, so the charts become time series.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deadcheck.analysis import Report, findings_markdown

__all__ = ["custom_layout", "log_report", "write_tensorboard"]


def custom_layout() -> dict[str, Any]:
    """The custom-scalars layout that groups deadcheck's charts."""
    return {
        "deadcheck": {
            "dead share of units, per site": [
                "Multiline",
                [r"deadcheck/dead_fraction/.*"],
            ],
            "mean zero fraction, per site": [
                "Multiline",
                [r"deadcheck/zero_fraction_mean/.*"],
            ],
            "mean slope, per site": ["Multiline", [r"deadcheck/slope_mean/.*"]],
            "findings by severity": ["Multiline", [r"deadcheck/findings/.*"]],
        }
    }


def log_report(writer: Any, report: Report, step: int = 0, *, heatmap: bool = True) -> None:
    """Log ``report`` to a ``SummaryWriter`` at ``step``."""
    import numpy as np

    for layer in report.sites:
        name = layer.name
        writer.add_scalar(f"deadcheck/dead_fraction/{name}", layer.dead_fraction, step)
        writer.add_scalar(f"deadcheck/zero_fraction_mean/{name}", layer.mean_zero_fraction, step)
        if layer.zero_fraction:
            writer.add_histogram(
                f"deadcheck/zero_fraction/{name}",
                np.asarray(layer.zero_fraction),
                step,
                bins=np.linspace(0.0, 1.0, 21),
            )
        slopes = layer.slopes
        if slopes:
            writer.add_scalar(f"deadcheck/slope_mean/{name}", float(np.mean(slopes)), step)
            writer.add_histogram(f"deadcheck/slope/{name}", np.asarray(slopes), step)
    for severity in ("info", "warning", "error"):
        count = sum(f.severity == severity for f in report.findings)
        writer.add_scalar(f"deadcheck/findings/{severity}", count, step)
    text = findings_markdown(report.findings) if report.findings else "no findings"
    writer.add_text("deadcheck/findings", text, step)
    if heatmap and report.sites:
        from deadcheck.plotting import heatmap_note, heatmap_rgb

        writer.add_image(
            "deadcheck/zero_fraction_heatmap", heatmap_rgb(report), step, dataformats="HWC"
        )
        note = heatmap_note(report)
        if note:  # what the bounded heatmap binned or left out
            writer.add_text("deadcheck/zero_fraction_heatmap_note", note, step)


def write_tensorboard(report: Report, log_dir: str | Path, step: int = 0) -> Path:
    """Write ``report`` as one step of event files in ``log_dir``, with the grouped layout."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        writer.add_custom_scalars(custom_layout())
        log_report(writer, report, step)
    finally:
        writer.close()
    return Path(log_dir)
