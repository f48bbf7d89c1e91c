"""How a report shows itself: its columns, summary line, Markdown and HTML, in one place.

The table and Markdown columns come from the statistics' declarations
(:data:`deadcheck.stats.STATS`, in their declared order), after the two every
site has (its kind and units), so a new statistic's column appears in every
format without a renderer naming it. Markdown is for pull requests and CI job
summaries; HTML and Markdown are also what a notebook shows for a
:class:`~deadcheck.results.report.Report` (``_repr_html_``,
``_repr_markdown_``). Names and messages are escaped
(:mod:`deadcheck.core.escaping`): nothing in a module name can end its code
span, break a table cell or add HTML.

The functions read a report through the :class:`Shown` protocol, so the
report module can use them without an import cycle.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Protocol

from deadcheck.core.escaping import md_code, md_text
from deadcheck.core.findings import SEVERITIES, Code, Finding
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats import STATS
from deadcheck.stats.base import Column, Judged

__all__ = [
    "Shown",
    "assumed_axes",
    "columns",
    "findings_markdown",
    "legends",
    "render_html",
    "render_markdown",
    "summary",
]


class ShownSite(Judged, Protocol):
    """A site as the display reads it."""

    @property
    def axis_assumed(self) -> bool: ...


class Shown(Protocol):
    """A report as the display reads it (:class:`~deadcheck.results.report.Report`)."""

    @property
    def sites(self) -> Sequence[ShownSite]: ...

    @property
    def findings(self) -> Sequence[Finding]: ...

    @property
    def samples(self) -> int: ...

    @property
    def target(self) -> str | None: ...

    @property
    def partial(self) -> bool: ...

    @property
    def thresholds(self) -> Thresholds: ...


def _kind(site: Judged) -> str:
    return site.kind


def _units(site: Judged) -> str:
    return str(site.units)


#: Columns every site has, ahead of the statistics' own.
_BASE = (
    Column("kind", "kind", 10, 0, _kind, align="<", text=True, cut=9),
    Column("units", "units", 6, 1, _units),
)


def columns(sites: Sequence[Judged]) -> list[Column]:
    """The columns shown for ``sites``, in order."""
    declared = [column for stat in STATS for column in stat.columns if column.shown(sites)]
    return [*_BASE, *sorted(declared, key=lambda c: c.order)]


def legends(shown: Sequence[Column], thresholds: Thresholds) -> list[str]:
    """The lines under the table that say what the shown columns mean."""
    return [column.legend(thresholds) for column in shown if column.legend is not None]


def summary(report: Shown) -> str:
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


def assumed_axes(report: Shown) -> str | None:
    """Which sites' unit axis was guessed from the rank, in one line (None: none was)."""
    names = [layer.name for layer in report.sites if layer.axis_assumed]
    if not names:
        return None
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} in all)" if len(names) > 5 else "")
    return (
        f"unit axis assumed from the rank at {shown}: no module's output had the activation's shape"
    )


def findings_markdown(findings: Iterable[Finding]) -> str:
    """Findings as a Markdown table, worst first (pull requests, CI summaries, TensorBoard)."""
    rows = ["| severity | code | site | message |", "|---|---|---|---|"]
    for f in sorted(findings, key=lambda f: -f.severity.rank):
        rows.append(
            f"| {md_text(f.severity)} | {md_code(f.code)} | {md_code(f.site)} | "
            f"{md_text(f.message)} |"
        )
    return "\n".join(rows)


def render_markdown(report: Shown) -> str:
    """The Markdown report: a summary line, the findings, and every site with its columns."""
    lines = ["# deadcheck report", "", md_text(summary(report)), ""]
    if report.findings:
        lines += ["## Findings", "", findings_markdown(report.findings), ""]
    if not report.sites:
        lines.append("No ReLU-family activation ran in this model: nothing to check.")
        return "\n".join(lines) + "\n"
    shown = columns(report.sites)
    head = " | ".join(["site", *(c.markdown for c in shown)])
    align = "|".join(["---", *("---:" if c.align == ">" else "---" for c in shown)])
    lines += ["## Sites", "", f"| {head} |", f"|{align}|"]
    for site in report.sites:
        cells = [md_code(site.name)]
        cells += [md_text(c.cell(site)) if c.text else c.cell(site) for c in shown]
        lines.append(f"| {' | '.join(cells)} |")
    assumed = assumed_axes(report)
    if assumed:
        lines += ["", md_text(assumed) + "."]
    return "\n".join(lines) + "\n"


def render_html(report: Shown, *, rows: int = 15) -> str:
    """A compact HTML table for a notebook: the summary, the findings, the worst sites first."""
    e = html.escape
    parts = [f"<p><b>deadcheck</b> {e(summary(report))}</p>"]
    if report.findings:
        items = "".join(
            f"<li><b>{e(f.severity)}</b> <code>{e(f.code)}</code> at <code>{e(f.site)}</code>: "
            f"{e(f.message)}</li>\n"
            for f in sorted(report.findings, key=lambda f: -f.severity.rank)
        )
        parts.append(f"<ul>\n{items}</ul>")
    if not report.sites:
        return "\n".join(parts) + "\n"
    shown = columns(report.sites)
    head = "".join(f"<th>{e(c.markdown)}</th>" for c in shown)
    body = []
    for site in list(report.sites)[:rows]:
        cells = "".join(
            f"<td style='text-align:{'right' if c.align == '>' else 'left'}'>{e(c.cell(site))}</td>"
            for c in shown
        )
        body.append(f"<tr><td><code>{e(site.name)}</code></td>{cells}</tr>\n")
    more = len(report.sites) - rows
    tail = f"<p>... {more} more site(s): <code>report.to_dataframe()</code></p>" if more > 0 else ""
    table = (
        f"<table><thead><tr><th>site</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
    return "\n".join([*parts, table, tail]).rstrip() + "\n"
