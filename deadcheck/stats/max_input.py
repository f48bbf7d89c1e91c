"""Each unit's largest input (its pre-activation): how far a dead unit is from firing.

A dead unit whose largest input was -0.01 is a nudge from life; one at -40 is
gone. The input is read before the activation where it is still intact; an
in-place activation has overwritten it by the time deadcheck sees the call,
so there the maximum is worked out from the output (to its precision) where it can be:

* a LeakyReLU, PReLU or RReLU-in-eval unit with a positive slope ``a``: its
  output ``y`` is ``x`` above zero and ``a * x`` below, so ``max x`` is
  ``max y`` when that is positive and ``max y / a`` otherwise;
* a ReLU or ReLU6 unit whose largest output was positive (and below ReLU6's
  cap): that output is its largest input.

Elsewhere (an in-place ReLU unit that never fired) the margin is unknown, and
the unit's ``max_input`` is ``null`` rather than a guess. One more read of
each activation, so it is opt-in: ``record(model, margins=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from deadcheck.core.kinds import kind
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats.base import (
    CallFacts,
    Column,
    Counted,
    Figure,
    Judged,
    Options,
    Reduce,
    Stat,
    State,
    Value,
)


def _per_unit_max(t: torch.Tensor, axis: int) -> torch.Tensor:
    dims = [d for d in range(t.ndim) if d != axis]
    m = t.detach().amax(dims) if dims else t.detach()
    return m.to(torch.float64)


def _slope_per_unit(call: CallFacts, units: int, like: torch.Tensor) -> torch.Tensor | None:
    """The positive slope of each unit's negative side, or None where not known and positive."""
    slope = getattr(call, "slope", None)
    if isinstance(slope, torch.Tensor):
        values = slope.detach().reshape(-1).to(device=like.device, dtype=torch.float64)
        values = values.expand(units) if values.numel() == 1 else values
        return values if values.numel() == units else None
    if isinstance(slope, (int, float)) and slope > 0:
        return torch.full((units,), float(slope), dtype=torch.float64, device=like.device)
    return None


def _update(
    totals: Mapping[str, torch.Tensor],
    call: CallFacts,
    x: torch.Tensor,
    output: torch.Tensor | None,
    axis: int,
    pre: torch.Tensor | None,
) -> None:
    best, unknown = totals["max_input"], totals["max_input_unknown"]
    if pre is not None:
        torch.maximum(best, _per_unit_max(pre, axis), out=best)
        return
    y = _per_unit_max(x if output is None else output, axis)
    row = kind(call.kind)
    if row.leaky:
        slope = _slope_per_unit(call, y.numel(), y)
        if slope is None:  # a zero or negative slope hides the input's sign
            unknown.add_(1)
            return
        known = torch.ones_like(y, dtype=torch.bool) & (slope > 0)
        derived = torch.where(y > 0, y, y / slope.clamp_min(1e-300))
    else:
        known = y > 0
        if row.saturate_at is not None:
            known &= y < row.saturate_at
        derived = y
    torch.maximum(best, torch.where(known, derived, best), out=best)
    unknown.add_((~known).to(torch.int64))


def _needs(call: CallFacts, options: Options) -> bool:
    return options.margins and kind(call.kind).family


def _host(raw: Mapping[str, tuple[float, ...]], positions: int) -> dict[str, tuple[Any, ...]]:
    if "max_input" not in raw:
        return {}
    return {
        "max_input": tuple(raw["max_input"]),
        "max_input_unknown": tuple(int(v) for v in raw["max_input_unknown"]),
    }


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    best = site.values.get("max_input")
    if best is None:
        return {"max_input": None}
    unknown = site.values["max_input_unknown"]
    return {
        "max_input": tuple(
            None if n or not math.isfinite(m) else float(m)
            for m, n in zip(best, unknown, strict=True)
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
    doc="per unit, the largest input seen (opt-in: margins=True); the margin of dead units",
    states=(
        State("max_input", dtype="float64", reduce=Reduce.MAX, initial=-math.inf),
        State("max_input_unknown"),
    ),
    needs=_needs,
    update=_update,
    host=_host,
    values=(Value("max_input", "floats"), Value("max_input_unknown")),
    figures=(Figure("max_input", "optional_floats", optional=True),),
    judge=_judge,
    columns=(
        Column(
            "margin",
            "margin",
            8,
            35,
            _cell,
            shown=_shown,
            legend=lambda t: "margin is the largest input of the dead unit nearest to firing.",
        ),
    ),
)
