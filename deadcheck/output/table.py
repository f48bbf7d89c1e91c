"""A report as a plain-text table for the terminal, deterministic for a given report and width."""

from __future__ import annotations

import textwrap

from deadcheck.core.escaping import terminal
from deadcheck.core.findings import Severity
from deadcheck.results.display import assumed_axes, columns, legends, summary
from deadcheck.results.report import Report
from deadcheck.stats.base import Column, Judged

__all__ = ["TABLE_ROWS", "render_table"]

#: Sites shown by the table without ``--all``.
TABLE_ROWS = 15


def _cell(column: Column, text: str) -> str:
    return " " * column.pad + f"{text:{column.align}{column.width}}"


def _row(shown: list[Column], site: Judged) -> str:
    return "".join(_cell(c, c.cell(site)[: c.cut]) for c in shown)


def _severity_rank(report: Report, site: str) -> int:
    severity = report.severity_of(site)
    return severity.rank + 1 if severity else 0


def render_table(report: Report, *, all_sites: bool = False, width: int = 80) -> str:
    """A plain-text report that reads well at ``width`` columns.

    Findings come first, worst first; then the sites, worst first and cut to
    :data:`TABLE_ROWS` unless ``all_sites`` (then every site in forward order).
    """
    lines = [summary(report)]
    if not report.sites:
        lines.append("no ReLU-family activation ran in this model: nothing to check")
        return terminal("\n".join(lines)) + "\n"
    if report.findings:
        lines += ["", "findings"]
        order = sorted(enumerate(report.findings), key=lambda p: (-p[1].severity.rank, p[0]))
        folded: dict[str, int] = {}
        for _, finding in order:
            if finding.severity is Severity.INFO and not all_sites:
                folded[finding.code] = folded.get(finding.code, 0) + 1
                continue
            head = f"  {finding.severity.upper():<8}{finding.code:<18}"
            lines.append(head + finding.site)  # names are identifiers: never cut
            lines += textwrap.wrap(
                finding.message, width, initial_indent=" " * 10, subsequent_indent=" " * 10
            )
        for code, n in folded.items():
            lines.append(
                f"  {'INFO':<8}{code:<18}at {n} site{'s' if n != 1 else ''} (--all lists them)"
            )
    shown = columns(report.sites)
    numbers = "".join(_cell(c, c.header) for c in shown)
    # Names are identifiers a user pastes into --sites or --unit-axis: the column
    # widens for the longest one rather than cutting it.
    longest = max(len(layer.name) for layer in report.sites)
    name_width = max(12, width - len(numbers) - 1, longest)
    lines += ["", f"{'site':<{name_width}} {numbers}".rstrip()]
    layers = list(report.sites)
    if not all_sites:
        layers.sort(
            key=lambda layer: (
                -_severity_rank(report, layer.name),
                -layer.dead_fraction,
                -layer.mean_zero_fraction,
            )
        )
        layers = layers[:TABLE_ROWS]
    for layer in layers:
        lines.append(f"{layer.name:<{name_width}} {_row(shown, layer)}".rstrip())
    hidden = len(report.sites) - len(layers)
    if hidden:
        lines.append(f"... {hidden} more site{'s' if hidden != 1 else ''} (--all shows every site)")
    lines.append("")
    lines += legends(shown, report.thresholds)
    assumed = assumed_axes(report)
    if assumed:
        lines += textwrap.wrap(assumed + " (--unit-axis sets it).", width)
    return terminal("\n".join(lines)) + "\n"
