"""Host-side counts per activation site: what a recording saw, as plain frozen data.

These are the quantities; judging them is :mod:`deadcheck.analysis`'s job and
showing them is :mod:`deadcheck.rendering`'s. Nothing here imports torch, so
stats can be saved, compared and analysed anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deadcheck.kinds import kind

__all__ = ["SiteId", "SiteStats", "Stats", "UncountedSite", "site_base", "site_name"]

Slope = float | tuple[float, ...] | None


def site_base(module: str, function: str | None) -> str:
    """A site's name without ``#i``: the module path, or ``caller:function`` for a call."""
    return module if function is None else f"{module}:{function}"


def site_name(base: str, index: int, occurrences: int) -> str:
    """The one place a name is made: ``base``, or ``base#index`` if it runs more than once."""
    return base if occurrences <= 1 else f"{base}#{index}"


@dataclass(frozen=True)
class SiteId:
    """Where a site is, as data: names are derived from it, never parsed back.

    ``module`` is the activation module's path, or for a functional call the
    path of the module whose forward made it (``function`` then names the
    function). ``index`` is which of the ``occurrences`` calls per forward pass
    this is; ``caller`` the module whose code made the call (where a swap
    rewrites it; None when called from outside the model).
    """

    module: str
    function: str | None = None
    index: int = 0
    occurrences: int = 1
    caller: str | None = None

    @property
    def base(self) -> str:
        """The name without ``#i``: ``layer1.0.relu`` or ``block:relu``."""
        return site_base(self.module, self.function)

    @property
    def name(self) -> str:
        return site_name(self.base, self.index, self.occurrences)

    def matches(self, key: str) -> bool:
        """Whether ``key`` names this site: its name, ``base#index``, or its base (all calls)."""
        return key in (self.name, self.base, f"{self.base}#{self.index}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "function": self.function,
            "index": self.index,
            "occurrences": self.occurrences,
            "caller": self.caller,
        }


@dataclass(frozen=True)
class UncountedSite:
    """A site whose counts are missing or incomplete, and why."""

    site: SiteId
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site.name, "why": self.why}


@dataclass(frozen=True)
class SiteStats:
    """Counts for one activation site over everything recorded.

    ``zeros[u]`` is how many of unit ``u``'s ``positions`` had an input <= 0
    (the negative regime: output exactly zero for ReLU). NaN never counts as
    zero; ``nan[u]`` counts positions of windows in which the unit saw a
    NaN. Infinities count by their sign (``+inf`` active, ``-inf`` off).
    ``abs_sum[u]`` (recorded with dormant statistics on) is the sum of the
    unit's |output| over its positions: ReDo's dormant score comes from it.
    """

    id: SiteId
    kind: str
    unit_axis: int
    units: int
    calls: int
    positions: int
    zeros: tuple[int, ...]
    nan: tuple[int, ...]
    saturated: tuple[int, ...] | None = None
    slope: Slope = None
    shape: tuple[int, ...] = ()
    abs_sum: tuple[float, ...] | None = None
    #: What decided the unit axis, in words: "the output of layer1.0.conv1 (Conv2d)",
    #: or how it was assumed when no module's output had the activation's shape.
    axis_source: str | None = None

    @property
    def axis_assumed(self) -> bool:
        """Whether the unit axis was assumed from the rank (no producer matched)."""
        return (self.axis_source or "").startswith("assumed")

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def module(self) -> str:
        return self.id.module

    @property
    def function(self) -> str | None:
        return self.id.function

    @property
    def caller(self) -> str | None:
        """Path of the module whose forward code made the call (None: called from outside)."""
        return self.id.caller

    @property
    def zero_fraction(self) -> tuple[float, ...]:
        """Per unit, the share of positions in the negative regime."""
        if self.positions == 0:
            return tuple(0.0 for _ in self.zeros)
        return tuple(z / self.positions for z in self.zeros)

    @property
    def family(self) -> bool:
        """A ReLU-family site, for which "dead" and the zero fraction mean something."""
        return kind(self.kind).family

    @property
    def dead_units(self) -> tuple[int, ...]:
        """Units whose input was <= 0 at every position seen (ReLU family only)."""
        if self.positions == 0 or not self.family:
            return ()
        return tuple(u for u, z in enumerate(self.zeros) if z == self.positions)

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
        if self.saturated is None or self.positions == 0:
            return ()
        return tuple(u for u, s in enumerate(self.saturated) if s == self.positions)

    @property
    def mean_abs(self) -> tuple[float, ...] | None:
        """Per unit, the mean |output| over its positions (None without dormant statistics)."""
        if self.abs_sum is None:
            return None
        return tuple(s / self.positions if self.positions else 0.0 for s in self.abs_sum)

    @property
    def dormant_score(self) -> tuple[float, ...] | None:
        """ReDo's score per unit: its mean |output| over the mean of its site's units.

        A unit is tau-dormant when its score is at most tau; a dead unit scores 0.
        A site whose every unit is silent scores 0 everywhere.
        """
        mean_abs = self.mean_abs
        if mean_abs is None:
            return None
        layer = sum(mean_abs) / len(mean_abs) if mean_abs else 0.0
        return tuple(m / layer if layer > 0 else 0.0 for m in mean_abs)

    def dormant_units(self, tau: float) -> tuple[int, ...]:
        """Units whose dormant score is at most ``tau`` (none without dormant statistics)."""
        return tuple(u for u, s in enumerate(self.dormant_score or ()) if s <= tau)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.id.to_dict(),
            "kind": self.kind,
            "unit_axis": self.unit_axis,
            "units": self.units,
            "calls": self.calls,
            "positions": self.positions,
            "zeros": list(self.zeros),
            "nan": list(self.nan),
            "saturated": None if self.saturated is None else list(self.saturated),
            "slope": list(self.slope) if isinstance(self.slope, tuple) else self.slope,
            "shape": list(self.shape),
            "abs_sum": None if self.abs_sum is None else list(self.abs_sum),
            "unit_axis_source": self.axis_source,
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
