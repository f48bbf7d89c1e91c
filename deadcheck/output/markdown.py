"""A report as Markdown, for pull requests and CI job summaries: every site, every finding.

Names and messages are escaped (:mod:`deadcheck.core.escaping`): nothing in
a module name can end its code span, break a table cell or add HTML.
"""

from __future__ import annotations

from collections.abc import Iterable

from deadcheck.core.escaping import md_code, md_text
from deadcheck.core.findings import Finding
from deadcheck.output.columns import columns
from deadcheck.output.summary import assumed_axes, summary
from deadcheck.results.report import Report

__all__ = ["findings_markdown", "render_markdown"]


def findings_markdown(findings: Iterable[Finding]) -> str:
    """Findings as a Markdown table, worst first (pull requests, CI summaries, TensorBoard)."""
    rows = ["| severity | code | site | message |", "|---|---|---|---|"]
    for f in sorted(findings, key=lambda f: -f.severity.rank):
        rows.append(
            f"| {md_text(f.severity)} | {md_code(f.code)} | {md_code(f.site)} | "
            f"{md_text(f.message)} |"
        )
    return "\n".join(rows)


def render_markdown(report: Report) -> str:
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
