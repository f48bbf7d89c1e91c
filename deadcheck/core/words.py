"""How figures read in messages and cells: one rounding of shares, one way to list units."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["percent", "units_text"]


def percent(x: float) -> str:
    """A whole percentage that never rounds a partial share to 0% or 100%: "<1%", ">99%"."""
    if 0 < x < 0.005:
        return "<1%"
    if 0.995 <= x < 1:
        return ">99%"
    return f"{100 * x:.0f}%"


def units_text(units: Sequence[int], limit: int = 8) -> str:
    """Unit numbers for a message: the first ``limit``, then how many in all."""
    shown = ", ".join(str(u) for u in units[:limit])
    return shown + (f", ... ({len(units)} in all)" if len(units) > limit else "")
