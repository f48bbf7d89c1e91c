"""The site columns of the table and of Markdown, from the statistics' declarations, once.

Two columns describe every site (its kind and units); the rest come from
:data:`deadcheck.stats.STATS` in their declared order, so a new statistic's
column appears in both formats without either renderer naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

from deadcheck.core.thresholds import Thresholds
from deadcheck.results.report import SiteReport
from deadcheck.stats import STATS
from deadcheck.stats.base import Column, Judged

__all__ = ["columns", "legends"]


def _kind(site: Judged) -> str:
    return site.kind


def _units(site: Judged) -> str:
    return str(site.units)


#: Columns every site has, ahead of the statistics' own.
_BASE = (
    Column("kind", "kind", 10, 0, _kind, align="<", text=True, cut=9),
    Column("units", "units", 6, 1, _units),
)


def columns(sites: Sequence[SiteReport]) -> list[Column]:
    """The columns shown for ``sites``, in order."""
    declared = [column for stat in STATS for column in stat.columns if column.shown(sites)]
    return [*_BASE, *sorted(declared, key=lambda c: c.order)]


def legends(shown: Sequence[Column], thresholds: Thresholds) -> list[str]:
    """The lines under the table that say what the shown columns mean."""
    return [column.legend(thresholds) for column in shown if column.legend is not None]
