"""Host-side counts per activation site: what a recording saw, as plain frozen data.

These are the quantities; judging them is :mod:`deadcheck.analysis`'s job and
showing them is :mod:`deadcheck.output`'s. A site's per-unit values are kept
by statistic (:mod:`deadcheck.stats`), under the keys each one declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deadcheck.core.sites import SiteFacts, SiteId, UncountedSite
from deadcheck.stats import STATS
from deadcheck.stats.dormant import mean_abs, scores
from deadcheck.stats.zeros import dead_units, zero_fraction

__all__ = ["SiteStats", "Slope", "Stats"]

Slope = float | tuple[float, ...] | None


@dataclass(frozen=True)
class SiteStats(SiteFacts):
    """Counts for one activation site over everything recorded.

    ``values`` holds each statistic's per-unit values by the key it declares
    (``zeros``, ``nan``, ``saturated``, ``abs_sum``, ...); the properties
    below read the common ones. ``zeros[u]`` is how many of unit ``u``'s
    ``positions`` had an input <= 0 (the negative regime: output exactly zero
    for ReLU). NaN never counts as zero; ``nan[u]`` counts positions of
    windows in which the unit saw a NaN. Infinities count by their sign
    (``+inf`` active, ``-inf`` off). ``abs_sum[u]`` (recorded with dormant
    sums on) is the sum of the unit's |output|: ReDo's dormant score comes
    from it.
    """

    id: SiteId
    kind: str
    unit_axis: int
    units: int
    calls: int
    positions: int
    values: Mapping[str, tuple[Any, ...]]
    slope: Slope = None
    shape: tuple[int, ...] = ()
    #: What decided the unit axis, in words: "the output of layer1.0.conv1 (Conv2d)",
    #: or how it was assumed when no module's output had the activation's shape.
    axis_source: str | None = None

    @property
    def zeros(self) -> tuple[int, ...]:
        return self.values["zeros"]

    @property
    def nan(self) -> tuple[int, ...]:
        return self.values["nan"]

    @property
    def saturated(self) -> tuple[int, ...] | None:
        return self.values.get("saturated")

    @property
    def abs_sum(self) -> tuple[float, ...] | None:
        return self.values.get("abs_sum")

    @property
    def zero_fraction(self) -> tuple[float, ...]:
        """Per unit, the share of positions in the negative regime."""
        return zero_fraction(self)

    @property
    def dead_units(self) -> tuple[int, ...]:
        """Units whose input was <= 0 at every position seen (ReLU family only)."""
        return dead_units(self)

    @property
    def dead_fraction(self) -> float:
        """The share of this site's units that are dead."""
        return len(self.dead_units) / self.units if self.units else 0.0

    @property
    def nan_units(self) -> tuple[int, ...]:
        """Units that saw at least one NaN."""
        return tuple(u for u, n in enumerate(self.nan) if n)

    @property
    def saturated_units(self) -> tuple[int, ...]:
        """ReLU6 units whose input was >= 6 at every position (no gradient there either)."""
        saturated = self.saturated
        if saturated is None or self.positions == 0:
            return ()
        return tuple(u for u, s in enumerate(saturated) if s == self.positions)

    @property
    def mean_abs(self) -> tuple[float, ...] | None:
        """Per unit, the mean |output| over its positions (None without dormant sums)."""
        return mean_abs(self)

    @property
    def dormant_score(self) -> tuple[float, ...] | None:
        """ReDo's score per unit: its mean |output| over the mean of its site's units."""
        return scores(self.mean_abs)

    def dormant_units(self, tau: float) -> tuple[int, ...]:
        """Units whose dormant score is at most ``tau`` (none without dormant sums)."""
        return tuple(u for u, s in enumerate(self.dormant_score or ()) if s <= tau)

    def to_dict(self) -> dict[str, Any]:
        values = {
            value.key: None if value.key not in self.values else value.write(self.values[value.key])
            for stat in STATS
            for value in stat.values
        }
        return {
            **self.id.to_dict(),
            "kind": self.kind,
            "unit_axis": self.unit_axis,
            "unit_axis_source": self.axis_source,
            "units": self.units,
            "calls": self.calls,
            "positions": self.positions,
            "shape": list(self.shape),
            **values,
            "slope": list(self.slope) if isinstance(self.slope, tuple) else self.slope,
        }


@dataclass(frozen=True)
class Stats:
    """Everything one recording saw, sites in forward order."""

    sites: tuple[SiteStats, ...]
    samples: int
    partial: bool = False
    target: str | None = None
    problems: tuple[str, ...] = field(default=())
    #: Each site whose counts are missing or incomplete, with the reason.
    uncounted: tuple[UncountedSite, ...] = field(default=())

    def site(self, name: str) -> SiteStats:
        """The site called ``name``; KeyError names the sites there are."""
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site {name!r}; sites: {', '.join(s.name for s in self.sites)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sites)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "partial": self.partial,
            "target": self.target,
            "problems": list(self.problems),
            "uncounted": [u.to_dict() for u in self.uncounted],
            "sites": [s.to_dict() for s in self.sites],
        }
