"""Whether a site's dead share keeps rising, over training snapshots or checkpoints."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deadcheck.core.findings import Code, Finding, Severity
from deadcheck.results.report import Report

__all__ = ["Trend", "rising_findings", "rising_sites"]


@dataclass(frozen=True)
class Trend:
    """When a dead share "keeps rising". Defaults and why:

    * ``window=5`` snapshots: long enough that one noisy window cannot make
      a trend, short enough to warn while there is time to act;
    * ``min_rise=0.1``: the share must climb at least 10 points of the
      site's units from the window's first snapshot to its last;
    * ``max_dips=1``: one step down inside the window is tolerated as noise;
      more means the share is wandering, not rising.
    """

    window: int = 5
    min_rise: float = 0.1
    max_dips: int = 1

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"trend window must be at least 2 snapshots, got {self.window}")


def rising_sites(
    history: Sequence[Mapping[str, float]], trend: Trend = Trend(), *, over: str = "snapshots"
) -> dict[str, str]:
    """Sites whose dead share rose over the last ``trend.window`` points, with a message.

    ``over`` names the points in the message: snapshots (training) or
    checkpoints (a series).

    A site is rising when, over the window, its dead share (a) has a positive
    least-squares slope, (b) ends at least ``min_rise`` above where it began,
    and (c) falls between consecutive snapshots at most ``max_dips`` times.
    """
    if len(history) < trend.window:
        return {}
    recent = history[-trend.window :]
    rising: dict[str, str] = {}
    for name in recent[-1]:
        values = [snap.get(name) for snap in recent]
        if any(v is None for v in values):
            continue
        series = [float(v) for v in values if v is not None]
        n = len(series)
        mean_x, mean_y = (n - 1) / 2, sum(series) / n
        slope = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(series)) / sum(
            (i - mean_x) ** 2 for i in range(n)
        )
        dips = sum(b < a for a, b in itertools.pairwise(series))
        if slope > 0 and series[-1] - series[0] >= trend.min_rise and dips <= trend.max_dips:
            path = " -> ".join(f"{100 * v:.0f}%" for v in series)
            rising[name] = f"dead share rose over the last {n} {over}: {path}"
    return rising


def rising_findings(
    reports: Sequence[Report], trend: Trend = Trend(), *, over: str = "snapshots"
) -> tuple[Finding, ...]:
    """A ``rising-dead-fraction`` warning for each site whose dead share rose over ``reports``."""
    if not reports:
        return ()
    history = [{s.name: s.dead_fraction for s in r.sites} for r in reports]
    last = reports[-1]
    return tuple(
        Finding(
            Code.RISING_DEAD_FRACTION, Severity.WARNING, name, message, last.site(name).dead_units
        )
        for name, message in rising_sites(history, trend, over=over).items()
    )
