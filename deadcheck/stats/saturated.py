"""How often each ReLU6 unit sat at its cap: at 6 and above it passes no gradient either."""

from __future__ import annotations

from typing import Any

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.core.thresholds import Thresholds
from deadcheck.stats.base import Counted, Figure, Judged, Read, Stat, State, Value


def _judge(site: Counted, t: Thresholds) -> dict[str, Any]:
    saturated = site.values.get("saturated")
    if saturated is None or site.positions == 0:
        return {"saturated_units": ()}
    return {"saturated_units": tuple(u for u, s in enumerate(saturated) if s == site.positions)}


def _findings(site: Judged, t: Thresholds) -> list[Finding]:
    units: tuple[int, ...] = site.figures["saturated_units"]
    if not units:
        return []
    return [
        Finding(
            Code.SATURATED_UNITS,
            Severity.INFO,
            site.name,
            f"{len(units)} of {site.units} units stayed at the ReLU6 cap "
            "(no gradient there either)",
            units,
        )
    ]


STAT = Stat(
    name="saturated",
    order=30,
    doc="per unit, positions at or above the cap (ReLU6); units stuck at the cap",
    states=(State("saturated", read=Read.AT_CAP),),
    needs=lambda call, options: call.saturate_at is not None,
    host=lambda raw, positions: (
        {"saturated": tuple(int(v) for v in raw["saturated"])} if "saturated" in raw else {}
    ),
    values=(Value("saturated"),),
    figures=(Figure("saturated_units", "units"),),
    judge=_judge,
    findings=_findings,
)
