"""Each unit's largest input (its pre-activation): how far a dead unit is from firing.

A dead unit whose largest input was -0.01 is a nudge from life; one at -40 is
gone. The maximum comes in the shared counting read, which reads the
activation's input where it is still intact (ReLU, ReLU6, PReLU, LeakyReLU
with a slope > 0): there it is exact. Where the input was overwritten in
place, the read reads the output, and the largest input is worked out from
it where it can be:

* a ReLU or ReLU6 unit whose largest output was positive (and below ReLU6's
  cap): that output is its largest input;
* a LeakyReLU or RReLU unit with a positive slope ``a``: its output ``y`` is
  ``x`` above zero and ``a * x`` below, so ``max x`` is ``max y`` when that is
  positive and ``max y / a`` otherwise (RReLU's ``a``: the midpoint of its range).

Elsewhere (an in-place ReLU unit that never fired) the margin is unknown, and
the unit's ``max_input`` is ``null`` rather than a guess. To know those margins,
record a model whose ReLUs do not work in place. On by default; ``margins=False``
turns it off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from deadcheck.core.kinds import kind
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats.base import (
    CallFacts,
    Column,
    Counted,
    Figure,
    Judged,
    Options,
    Read,
    Reduce,
    Stat,
    State,
    Value,
)


def _needs(call: CallFacts, options: Options) -> bool:
    return options.margins and kind(call.kind).family


def _host(raw: Mapping[str, tuple[float, ...]], positions: int) -> dict[str, tuple[Any, ...]]:
    if "max_input" not in raw:
        return {}
    return {
        "max_input": tuple(raw["max_input"]),
        "max_from_output": tuple(int(v) for v in raw["max_from_output"]),
    }


def _largest_input(best: float, from_output: int, site: Counted) -> float | None:
    """A unit's largest input from the largest value read, or None where it is not known."""
    if not math.isfinite(best):
        return None
    if not from_output:
        return best  # every call read the input
    row = kind(site.kind)
    if not row.leaky:  # ReLU, ReLU6: a positive output below the cap is the input
        cap = row.saturate_at
        return best if best > 0 and (cap is None or best < cap) else None
    if best > 0:
        return best
    slope = site.slope
    if isinstance(slope, (int, float)) and slope > 0:
        return best / slope
    return None  # a zero, negative or per-unit slope hides the input


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    best = site.values.get("max_input")
    if best is None:
        return {"max_input": None}
    from_output = site.values["max_from_output"]
    return {
        "max_input": tuple(
            _largest_input(m, k, site) for m, k in zip(best, from_output, strict=True)
        )
    }


def nearest_margin(site: Judged) -> float | None:
    """Of the site's dead units, the largest input of the one nearest to firing (None: none)."""
    best = site.figures.get("max_input")
    dead = site.figures.get("dead_units") or ()
    if best is None or not dead:
        return None
    known = [best[u] for u in dead if best[u] is not None]
    return max(known) if known else None


def _cell(site: Judged) -> str:
    margin = nearest_margin(site)
    return "-" if margin is None else f"{margin:.3g}"


def _shown(sites: Any) -> bool:
    return any(nearest_margin(site) is not None for site in sites)


STAT = Stat(
    name="max_input",
    order=50,
    doc="per unit, the largest input seen; the margin of dead units",
    states=(
        State("max_input", dtype="float64", reduce=Reduce.MAX, initial=-math.inf, read=Read.MAX),
        # calls whose maximum is of the output: the counting read knows which it read
        State("max_from_output", read=Read.OUTPUT_CALLS),
    ),
    needs=_needs,
    host=_host,
    values=(Value("max_input", "floats"), Value("max_from_output")),
    figures=(Figure("max_input", "optional_floats", optional=True),),
    judge=_judge,
    columns=(
        Column(
            "margin",
            "margin",
            10,  # "-1.23e+03" and "-0.000616" are 9 characters
            35,
            _cell,
            shown=_shown,
            legend=lambda t: "margin is the largest input of the dead unit nearest to firing.",
        ),
    ),
)
