"""Judge recorded counts: each statistic's figures and findings, for every site.

:func:`analyze` is pure: :class:`~deadcheck.results.stats.Stats` in,
:class:`~deadcheck.results.report.Report` out. Thresholds are explicit, with
documented defaults, so a report can always be re-derived from the same
stats with other thresholds.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.thresholds import Thresholds
from deadcheck.results.report import Report, SiteReport
from deadcheck.results.stats import SiteStats, Stats
from deadcheck.stats import STATS

__all__ = ["analyze", "judge_site"]


def judge_site(site: SiteStats, thresholds: Thresholds = Thresholds()) -> SiteReport:
    """One site's report: every statistic's figures from its counts."""
    figures: dict[str, Any] = {}
    for stat in STATS:
        figures.update(stat.judge(site, thresholds))
    return SiteReport(
        id=site.id,
        kind=site.kind,
        units=site.units,
        unit_axis=site.unit_axis,
        positions=site.positions,
        calls=site.calls,
        figures=figures,
        shape=site.shape,
        axis_source=site.axis_source,
    )


def analyze(stats: Stats, thresholds: Thresholds | None = None, **overrides: float) -> Report:
    """Turn counts into a :class:`~deadcheck.results.report.Report`.

    ``thresholds`` (default :class:`~deadcheck.core.thresholds.Thresholds`,
    whose docstring gives each default's reason), with any of its fields
    overridden by keyword: ``analyze(stats, dying=0.75)``.
    """
    thresholds = replace(thresholds or Thresholds(), **overrides)
    sites = tuple(judge_site(site, thresholds) for site in stats.sites)
    uncounted = tuple(
        Finding(
            Code.UNCOUNTED_SITE,
            Severity.ERROR,
            u.site.name,
            f"could not be counted ({u.why}); the report is incomplete",
        )
        for u in stats.uncounted
    )
    findings = uncounted + tuple(
        f for site in sites for stat in STATS for f in stat.findings(site, thresholds)
    )
    return Report(
        sites=sites,
        findings=findings,
        samples=stats.samples,
        thresholds=thresholds,
        target=stats.target,
        partial=stats.partial,
        problems=stats.problems,
    )
