"""Show a :class:`~deadcheck.analysis.Report` as a terminal table, JSON or Markdown.

Pure text in, text out, deterministic for a given report and width, so the
command line's output can be kept as golden files.
"""

from __future__ import annotations

import textwrap
from typing import Literal

from deadcheck import jsontext
from deadcheck.analysis import SEVERITIES, Report, SiteReport, findings_markdown, percent
from deadcheck.escaping import md_code, md_text, terminal

__all__ = ["FORMATS", "render", "render_json", "render_markdown", "render_table"]

Format = Literal["table", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("table", "json", "markdown")

#: Sites shown by the table without ``--all``.
TABLE_ROWS = 15


def _slope_text(layer: SiteReport) -> str:
    slope = layer.slope
    if slope is None:
        return "-"
    if isinstance(slope, tuple):
        return (
            f"{min(slope):.2g}..{max(slope):.2g}" if min(slope) != max(slope) else f"{slope[0]:.3g}"
        )
    return f"{slope:.3g}"


def _severity_rank(report: Report, site: str) -> int:
    severity = report.severity_of(site)
    return SEVERITIES.index(severity) + 1 if severity else 0


def _summary(report: Report) -> str:
    counts = {s: sum(f.severity == s for f in report.findings) for s in reversed(SEVERITIES)}
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n]
    findings = ", ".join(parts) if parts else "no findings"
    partial = " (partial: interrupted)" if report.partial else ""
    uncounted = sum(f.code == "uncounted-site" for f in report.findings)
    if uncounted:
        partial += f" (incomplete: {uncounted} site{'s' if uncounted != 1 else ''} not counted)"
    sites = len(report.sites)
    return (
        f"{report.target or 'model'}: {report.samples} samples, "
        f"{sites} site{'s' if sites != 1 else ''}, {findings}{partial}"
    )


def render_table(report: Report, *, all_sites: bool = False, width: int = 80) -> str:
    """A plain-text report that reads well at ``width`` columns.

    Findings come first, worst first; then the sites, worst first and cut to
    :data:`TABLE_ROWS` unless ``all_sites`` (then every site in forward order).
    """
    lines = [_summary(report)]
    if not report.sites:
        lines.append("no ReLU-family activation ran in this model: nothing to check")
        return terminal("\n".join(lines)) + "\n"
    if report.findings:
        lines += ["", "findings"]
        order = sorted(
            enumerate(report.findings),
            key=lambda p: (-SEVERITIES.index(p[1].severity), p[0]),
        )
        folded: dict[str, int] = {}
        for _, finding in order:
            if finding.severity == "info" and not all_sites:
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
    dormant = any(layer.dormant_units is not None for layer in report.sites)
    extra = f"{'dorm%':>7}" if dormant else ""
    numbers = f"{'kind':<10}{'units':>6}{'dead':>6}{'dead%':>7}{extra}{'zero%':>7}  {'slope':<9}"
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
        share = layer.dormant_fraction
        dormant_cell = (f"{'-' if share is None else percent(share):>7}") if dormant else ""
        family = layer.family
        row = (
            f"{layer.name:<{name_width}} {layer.kind[:9]:<10}{layer.units:>6}"
            f"{len(layer.dead_units) if family else '-':>6}"
            f"{percent(layer.dead_fraction) if family else '-':>7}{dormant_cell}"
            f"{percent(layer.mean_zero_fraction) if family else '-':>7}  {_slope_text(layer):<9}"
        )
        lines.append(row.rstrip())
    hidden = len(report.sites) - len(layers)
    if hidden:
        lines.append(f"... {hidden} more site{'s' if hidden != 1 else ''} (--all shows every site)")
    lines.append("")
    lines.append("zero% is the mean share of inputs <= 0 per unit; dead units had no input > 0.")
    assumed = _assumed_axes(report)
    if assumed:
        lines += textwrap.wrap(assumed + " (--unit-axis sets it).", width)
    if dormant:
        lines.append(
            f"dorm% is the share of units whose mean |output| is <= "
            f"{report.thresholds.dormant:g} of the site's mean."
        )
    return terminal("\n".join(lines)) + "\n"


def _assumed_axes(report: Report) -> str | None:
    """Which sites' unit axis was guessed from the rank, in one line (None: none was)."""
    names = [layer.name for layer in report.sites if layer.axis_assumed]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    return (
        f"unit axis assumed from the rank at {shown}: no module's output had the activation's shape"
    )


def render_json(report: Report) -> str:
    """The JSON report (schema ``deadcheck.report/1``)."""
    return jsontext.dumps(report.to_dict())


def render_markdown(report: Report) -> str:
    """A Markdown summary for pull requests and CI job summaries: every site, every finding.

    Names and messages are escaped (:mod:`deadcheck.escaping`): nothing in a
    module name can end its code span, break a table cell or add HTML.
    """
    lines = ["# deadcheck report", "", md_text(_summary(report)), ""]
    if report.findings:
        lines += ["## Findings", "", findings_markdown(report.findings), ""]
    if report.sites:
        dormant = any(layer.dormant_units is not None for layer in report.sites)
        extra, align = (" dormant % |", "---:|") if dormant else ("", "")
        lines += [
            "## Sites",
            "",
            f"| site | kind | units | dead | dead % |{extra} mean zero % | slope |",
            f"|---|---|---:|---:|---:|{align}---:|---|",
        ]
        for layer in report.sites:
            family = layer.family
            share = layer.dormant_fraction
            cell = (f" {'-' if share is None else percent(share)} |") if dormant else ""
            lines.append(
                f"| {md_code(layer.name)} | {md_text(layer.kind)} | {layer.units} | "
                f"{len(layer.dead_units) if family else '-'} | "
                f"{percent(layer.dead_fraction) if family else '-'} |{cell} "
                f"{percent(layer.mean_zero_fraction) if family else '-'} | "
                f"{md_text(_slope_text(layer))} |"
            )
        assumed = _assumed_axes(report)
        if assumed:
            lines += ["", md_text(assumed) + "."]
    else:
        lines.append("No ReLU-family activation ran in this model: nothing to check.")
    return "\n".join(lines) + "\n"


def render(
    report: Report, fmt: Format = "table", *, all_sites: bool = False, width: int = 80
) -> str:
    """``report`` in one of :data:`FORMATS`."""
    if fmt == "table":
        return render_table(report, all_sites=all_sites, width=width)
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
