"""Host-side counts per activation site: what a recording saw, as plain frozen data.

These are the quantities; judging them is :mod:`deadcheck.analysis`'s job and
showing them is :mod:`deadcheck.rendering`'s. Nothing here imports torch, so
stats can be saved, compared and analysed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["SiteStats", "Stats"]

Slope = float | tuple[float, ...] | None


@dataclass(frozen=True)
class SiteStats:
    """Counts for one activation site over everything recorded.

    ``zeros[u]`` is how many of unit ``u``'s ``positions`` had an input <= 0
    (the negative regime: output exactly zero for ReLU). NaN never counts as
    zero; ``nonfinite[u]`` counts positions of windows in which the unit saw a
    NaN. Infinities count by their sign (``+inf`` active, ``-inf`` off).
    """

    name: str
    kind: str
    module: str
    function: str | None
    unit_axis: int
    units: int
    calls: int
    positions: int
    zeros: tuple[int, ...]
    nonfinite: tuple[int, ...]
    saturated: tuple[int, ...] | None = None
    slope: Slope = None
    shape: tuple[int, ...] = ()
    #: Path of the module whose forward code made the call (None: called from outside).
    caller: str | None = None

    @property
    def zero_fraction(self) -> tuple[float, ...]:
        """Per unit, the share of positions in the negative regime."""
        if self.positions == 0:
            return tuple(0.0 for _ in self.zeros)
        return tuple(z / self.positions for z in self.zeros)

    @property
    def dead_units(self) -> tuple[int, ...]:
        """Units whose input was <= 0 at every position seen."""
        if self.positions == 0:
            return ()
        return tuple(u for u, z in enumerate(self.zeros) if z == self.positions)

    @property
    def dead_fraction(self) -> float:
        """The share of this site's units that are dead."""
        return len(self.dead_units) / self.units if self.units else 0.0

    @property
    def nonfinite_units(self) -> tuple[int, ...]:
        """Units that saw at least one NaN."""
        return tuple(u for u, n in enumerate(self.nonfinite) if n)

    @property
    def saturated_units(self) -> tuple[int, ...]:
        """ReLU6 units whose input was >= 6 at every position (no gradient there either)."""
        if self.saturated is None or self.positions == 0:
            return ()
        return tuple(u for u, s in enumerate(self.saturated) if s == self.positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "module": self.module,
            "function": self.function,
            "unit_axis": self.unit_axis,
            "units": self.units,
            "calls": self.calls,
            "positions": self.positions,
            "zeros": list(self.zeros),
            "nonfinite": list(self.nonfinite),
            "saturated": None if self.saturated is None else list(self.saturated),
            "slope": list(self.slope) if isinstance(self.slope, tuple) else self.slope,
            "shape": list(self.shape),
            "caller": self.caller,
        }


@dataclass(frozen=True)
class Stats:
    """Everything one recording saw, sites in forward order."""

    sites: tuple[SiteStats, ...]
    samples: int
    partial: bool = False
    target: str | None = None
    problems: tuple[str, ...] = field(default=())
    #: (site name, why) for each site whose counts are missing or incomplete.
    uncounted: tuple[tuple[str, str], ...] = field(default=())

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
            "uncounted": [{"site": name, "why": why} for name, why in self.uncounted],
            "sites": [s.to_dict() for s in self.sites],
        }
