"""How often each unit was in its negative regime, and whether it saw NaN: the dead-unit count.

One indicator, ``ceil(clamp(x, 0, 1))``, read once per call, gives both: 1
for every positive value (however tiny), 0 for zero and below, NaN for NaN.
Summed per unit into a float32 window it counts the unit's positive
positions exactly, and turns NaN exactly when the unit saw a NaN; a unit
whose window is NaN has all that window's positions counted as NaN, never as
zeros. ``zeros`` is worked out on the host as positions minus the rest, so
nothing waits for the device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.kinds import kind
from deadcheck.core.thresholds import Thresholds
from deadcheck.core.words import percent, units_text
from deadcheck.stats.base import (
    Column,
    Counted,
    Figure,
    Histogram,
    Judged,
    Read,
    Scalar,
    Stat,
    State,
    Value,
)


def _settle(
    totals: Mapping[str, torch.Tensor], windows: Mapping[str, torch.Tensor], positions: int
) -> None:
    totals["nan"].add_(torch.isnan(windows["positive"]).to(torch.int64) * positions)


def _host(raw: Mapping[str, tuple[float, ...]], positions: int) -> dict[str, tuple[Any, ...]]:
    nan = tuple(int(v) for v in raw["nan"])
    zeros = tuple(positions - int(p) - n for p, n in zip(raw["positive"], nan, strict=True))
    return {"zeros": zeros, "nan": nan}


def dead_units(site: Counted) -> tuple[int, ...]:
    """Units whose input was <= 0 at every position seen, where that means no gradient.

    ReLU and ReLU6 only: a LeakyReLU, PReLU or RReLU unit that stayed negative
    still passes a gradient (its slope), and is linear on the data instead
    (:mod:`deadcheck.stats.linear`).
    """
    zeros = site.values["zeros"]
    if site.positions == 0 or not site.family or kind(site.kind).leaky:
        return ()
    return tuple(u for u, z in enumerate(zeros) if z == site.positions)


def zero_fraction(site: Counted) -> tuple[float, ...]:
    """Per unit, the share of positions in the negative regime."""
    zeros = site.values["zeros"]
    if site.positions == 0:
        return tuple(0.0 for _ in zeros)
    return tuple(z / site.positions for z in zeros)


def _judge(site: Counted, thresholds: Thresholds) -> dict[str, Any]:
    dead = dead_units(site)
    return {
        "zero_fraction": zero_fraction(site),
        "dead_units": dead,
        "dead_fraction": len(dead) / site.units if site.units else 0.0,
        "nan_units": tuple(u for u, n in enumerate(site.values["nan"]) if n),
    }


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    found: list[Finding] = []
    nan, dead = site.figures["nan_units"], site.figures["dead_units"]
    if nan:
        found.append(
            Finding(
                Code.NAN_ACTIVATIONS,
                Severity.ERROR,
                site.name,
                f"{len(nan)} of {site.units} units saw NaN (units {units_text(nan)})",
                nan,
            )
        )
    regime = "never fired"
    share = site.figures["dead_fraction"]
    if dead and len(dead) == site.units:
        found.append(
            Finding(
                Code.DEAD_LAYER,
                Severity.ERROR,
                site.name,
                f"all {site.units} units {regime} on {site.positions} positions each",
                dead,
            )
        )
    elif dead and share >= t.dying:
        found.append(
            Finding(
                Code.DYING_LAYER,
                Severity.WARNING,
                site.name,
                f"{len(dead)} of {site.units} units ({percent(share)}) {regime}; "
                f"threshold {percent(t.dying)}",
                dead,
            )
        )
    elif dead:
        found.append(
            Finding(
                Code.DEAD_UNITS,
                Severity.INFO,
                site.name,
                f"{len(dead)} of {site.units} units {regime} (units {units_text(dead)})",
                dead,
            )
        )
    return found


def mean_zero_fraction(site: Judged) -> float:
    """The site's mean share of positions in the negative regime."""
    zf: Sequence[float] = site.figures["zero_fraction"]
    return sum(zf) / len(zf) if zf else 0.0


def _family_only(text: Any) -> Any:
    return lambda site: text(site) if site.family else "-"


STAT = Stat(
    name="zeros",
    order=10,
    doc="per unit, positions with input <= 0 and positions that saw NaN; dead units",
    states=(State("positive", read=Read.POSITIVE), State("nan")),
    settle=_settle,
    host=_host,
    values=(Value("zeros"), Value("nan")),
    figures=(
        Figure("zero_fraction", "floats"),
        Figure("dead_units", "units"),
        Figure("dead_fraction", "share"),
        Figure("nan_units", "units"),
    ),
    judge=_judge,
    findings=_findings,
    columns=(
        Column("dead", "dead", 6, 10, _family_only(lambda s: str(len(s.figures["dead_units"])))),
        Column(
            "dead%", "dead %", 7, 20, _family_only(lambda s: percent(s.figures["dead_fraction"]))
        ),
        Column(
            "zero%",
            "mean zero %",
            7,
            40,
            _family_only(lambda s: percent(mean_zero_fraction(s))),
            legend=lambda t: (
                "zero% is the mean share of inputs <= 0 per unit; dead units had no input > 0."
            ),
        ),
    ),
    scalars=(
        Scalar(
            "dead_fraction",
            "dead share of units, per site",
            lambda s: s.figures["dead_fraction"],
            diff=True,
            label="dead share",
        ),
        Scalar("zero_fraction_mean", "mean zero fraction, per site", mean_zero_fraction),
    ),
    histograms=(Histogram("zero_fraction", lambda s: s.figures["zero_fraction"], (0.0, 1.0, 21)),),
)
