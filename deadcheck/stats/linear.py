"""Units that never crossed their kink on the data: for them the site is a linear map.

A ReLU unit whose input was > 0 at every position acted as the identity; a
LeakyReLU, PReLU or RReLU unit whose input stayed on one side acted as a
linear map with slope 1 or with its slope; a ReLU6 unit is linear only where
it neither reached 0 nor its cap. Decided exactly by the counts the zeros
(and saturated) statistics already keep: no read of its own.
"""

from __future__ import annotations

from typing import Any

from deadcheck.core.findings import Code, Finding
from deadcheck.core.kinds import kind
from deadcheck.core.thresholds import Thresholds
from deadcheck.core.words import percent
from deadcheck.stats.base import Column, Counted, Figure, Judged, Scalar, Stat, share_finding


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    if not site.family or site.positions == 0:
        return {"always_on_units": (), "linear_units": ()}
    zeros, nan = site.values["zeros"], site.values["nan"]
    capped = site.values.get("saturated") or (0,) * len(zeros)
    always_on = tuple(
        u for u, (z, n, c) in enumerate(zip(zeros, nan, capped, strict=True)) if not (z or n or c)
    )
    linear = set(always_on)
    if kind(site.kind).leaky:  # the negative side is a line too: a unit that stayed there
        linear |= {u for u, z in enumerate(zeros) if z == site.positions}
    return {"always_on_units": always_on, "linear_units": tuple(sorted(linear))}


def linear_fraction(site: Judged) -> float | None:
    """The share of the site's units that never crossed their kink (None: no kink)."""
    if not site.family:
        return None
    return len(site.figures["linear_units"]) / site.units if site.units else 0.0


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    return share_finding(
        Code.LINEAR_UNITS,
        site,
        site.figures["linear_units"],
        t,
        "never crossed their kink on this data: the site acts as a linear map for them",
    )


def _cell(site: Judged) -> str:
    share = linear_fraction(site)
    return "-" if share is None else percent(share)


STAT = Stat(
    name="linear",
    order=15,
    doc="units that never crossed their kink (linear on the data), from the zero counts",
    figures=(Figure("always_on_units", "units"), Figure("linear_units", "units")),
    judge=_judge,
    findings=_findings,
    columns=(
        Column(
            "lin%",
            "linear %",
            6,
            25,
            _cell,
            legend=lambda t: (
                "lin% is the share of units that never crossed their kink "
                "(a linear map on this data)."
            ),
        ),
    ),
    scalars=(
        Scalar(
            "linear_fraction",
            "linear share of units, per site",
            linear_fraction,
            diff=True,
            label="linear share",
        ),
    ),
)
