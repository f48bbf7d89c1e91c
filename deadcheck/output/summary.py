"""The lines every text format opens or closes with: the summary and the assumed unit axes."""

from __future__ import annotations

from deadcheck.core.findings import SEVERITIES, Code
from deadcheck.results.report import Report

__all__ = ["assumed_axes", "summary"]


def summary(report: Report) -> str:
    """One line: target, samples, sites, findings by severity, and whether it is partial."""
    counts = {s: sum(f.severity is s for f in report.findings) for s in reversed(SEVERITIES)}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    findings = ", ".join(parts) if parts else "no findings"
    partial = " (partial: interrupted)" if report.partial else ""
    uncounted = sum(f.code is Code.UNCOUNTED_SITE for f in report.findings)
    if uncounted:
        partial += f" (incomplete: {uncounted} site{'s' if uncounted != 1 else ''} not counted)"
    sites = len(report.sites)
    return (
        f"{report.target or 'model'}: {report.samples} samples, "
        f"{sites} site{'s' if sites != 1 else ''}, {findings}{partial}"
    )


def assumed_axes(report: Report) -> str | None:
    """Which sites' unit axis was guessed from the rank, in one line (None: none was)."""
    names = [layer.name for layer in report.sites if layer.axis_assumed]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    return (
        f"unit axis assumed from the rank at {shown}: no module's output had the activation's shape"
    )
