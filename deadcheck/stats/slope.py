"""The learned or fixed slope of a leaky unit's negative side, as the last call used it.

Not a per-call reduction: the slope is a parameter (PReLU) or an argument
(LeakyReLU), read from the call and moved to the host with the counts.
Near 1 the unit is almost linear; below about 0.005 it is leaky in name only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats.base import Column, Counted, Figure, Histogram, Judged, Scalar, Stat


def slopes(site: Judged) -> tuple[float, ...]:
    """The slope as a tuple: one per unit, one shared, or none (ReLU, ReLU6)."""
    slope = site.figures["slope"]
    if slope is None:
        return ()
    return slope if isinstance(slope, tuple) else (slope,)


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    return {"slope": site.slope}


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    found: list[Finding] = []
    values = slopes(site)
    per_unit = len(values) > 1

    def scope(which: Sequence[int], first: float) -> str:
        return f"{len(which)} of {len(values)} slopes are" if per_unit else f"slope {first:.3g} is"

    # A small tolerance keeps the band's edges (0.7 and 1.3 by default) inside it.
    near = [u for u, s in enumerate(values) if abs(1.0 - s) <= t.near_linear + 1e-9]
    if near:
        found.append(
            Finding(
                Code.NEAR_LINEAR_SLOPE,
                Severity.WARNING,
                site.name,
                f"{scope(near, values[near[0]])} within {t.near_linear:g} of 1: "
                "the unit is almost linear",
                tuple(near) if per_unit else (),
            )
        )
    negative = [u for u, s in enumerate(values) if s < 0]
    if negative:
        found.append(
            Finding(
                Code.NEGATIVE_SLOPE,
                Severity.INFO,
                site.name,
                f"{scope(negative, values[negative[0]])} negative: those units fold their "
                "negative inputs upward (the unit is not monotonic)",
                tuple(negative) if per_unit else (),
            )
        )
    steep = [u for u, s in enumerate(values) if s > 1]
    if steep:
        found.append(
            Finding(
                Code.STEEP_SLOPE,
                Severity.INFO,
                site.name,
                f"{scope(steep, values[steep[0]])} above 1: those units pass negative inputs "
                "more strongly than positive ones",
                tuple(steep) if per_unit else (),
            )
        )
    tiny = [u for u, s in enumerate(values) if abs(s) < t.tiny_slope]
    if tiny:
        found.append(
            Finding(
                Code.TINY_SLOPE,
                Severity.INFO,
                site.name,
                f"{scope(tiny, values[tiny[0]])} below {t.tiny_slope:g}: leaky in name only",
                tuple(tiny) if per_unit else (),
            )
        )
    return found


def slope_text(site: Judged) -> str:
    """The slope in a table cell: one value, or the range of per-unit slopes."""
    values = slopes(site)
    if not values:
        return "-"
    if len(values) > 1 and min(values) != max(values):
        return f"{min(values):.2g}..{max(values):.2g}"
    return f"{values[0]:.3g}"


def _mean(site: Judged) -> float | None:
    values = slopes(site)
    return sum(values) / len(values) if values else None


STAT = Stat(
    name="slope",
    order=40,
    doc="the slope of the negative side (LeakyReLU, PReLU); near-linear and tiny slopes",
    figures=(Figure("slope", "slope"),),
    judge=_judge,
    findings=_findings,
    columns=(Column("slope", "slope", 9, 50, slope_text, align="<", pad=2, text=True),),
    scalars=(Scalar("slope_mean", "mean slope, per site", _mean),),
    histograms=(Histogram("slope", slopes),),
)
