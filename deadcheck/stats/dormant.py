"""Each unit's mean |output|, for ReDo's dormant score (Sokar et al. 2023).

A unit is tau-dormant when its mean |output| is at most tau times the mean
over its site's units. The sums come in the shared counting read (for the
ReLU family from the input where it is intact: a ReLU's |output| is its
input's positive part, a LeakyReLU's or PReLU's its positive part plus the
slope times its negative part), so they cost almost nothing and are on by
default (``dormant_sums=False`` turns them off).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deadcheck.core.findings import Code, Finding
from deadcheck.core.thresholds import Thresholds
from deadcheck.core.words import percent
from deadcheck.stats.base import (
    CallFacts,
    Column,
    Counted,
    Figure,
    Histogram,
    Judged,
    Options,
    Read,
    Scalar,
    Stat,
    State,
    Value,
    share_finding,
    unit_share,
)


def mean_abs(site: Counted) -> tuple[float, ...] | None:
    """Per unit, the mean |output| over its positions (None without dormant sums)."""
    sums = site.values.get("abs_sum")
    if sums is None:
        return None
    return tuple(s / site.positions if site.positions else 0.0 for s in sums)


def scores(means: Sequence[float] | None) -> tuple[float, ...] | None:
    """ReDo's score per unit: its mean |output| over the mean of its site's units.

    A dead unit scores 0; a site whose every unit is silent scores 0 everywhere.
    """
    if means is None:
        return None
    layer = sum(means) / len(means) if means else 0.0
    return tuple(m / layer if layer > 0 else 0.0 for m in means)


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    means = mean_abs(site)
    score = scores(means)
    return {
        "mean_abs": means,
        "dormant_units": None
        if score is None
        else tuple(u for u, s in enumerate(score) if s <= t.dormant),
    }


def dormant_fraction(site: Judged) -> float | None:
    """The share of units that are dormant (None without dormant sums)."""
    return unit_share(site, "dormant_units")


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    dormant: tuple[int, ...] = site.figures["dormant_units"] or ()
    dead = set(site.figures.get("dead_units", ()))
    if not set(dormant) - dead:  # a dead ReLU unit is dormant too: say only what is new
        return []
    both = len(dead & set(dormant))
    return share_finding(
        Code.DORMANT_UNITS,
        site,
        dormant,
        t,
        f"are dormant: mean |output| at most {t.dormant:g} of the site's average"
        + (f", {both} of them dead" if both else ""),
    )


def _any_recorded(sites: Sequence[Judged]) -> bool:
    return any(site.figures["dormant_units"] is not None for site in sites)


def _cell(site: Judged) -> str:
    share = dormant_fraction(site)
    return "-" if share is None else percent(share)


def _needs(call: CallFacts, options: Options) -> bool:
    return options.keeps_sums


STAT = Stat(
    name="dormant",
    order=20,
    doc="per unit, the sum of |output| (opt-in); ReDo's dormant units",
    states=(State("abs_sum", dtype="float64", read=Read.ABS_SUM),),
    needs=_needs,
    host=lambda raw, positions: {"abs_sum": raw["abs_sum"]} if "abs_sum" in raw else {},
    values=(Value("abs_sum", "floats"),),
    figures=(
        Figure("mean_abs", "floats", optional=True),
        Figure("dormant_units", "units", optional=True),
    ),
    judge=_judge,
    findings=_findings,
    columns=(
        Column(
            "dorm%",
            "dormant %",
            7,
            30,
            _cell,
            shown=_any_recorded,
            legend=lambda t: (
                f"dorm% is the share of units whose mean |output| is <= "
                f"{t.dormant:g} of the site's mean."
            ),
        ),
    ),
    scalars=(
        Scalar(
            "dormant_fraction",
            "dormant share of units, per site",
            dormant_fraction,
            diff=True,
            label="dormant share",
        ),
    ),
    histograms=(Histogram("mean_abs", lambda s: s.figures["mean_abs"] or ()),),
)
