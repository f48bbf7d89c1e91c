"""Name the sites of a forward pass: which call of a module or function this is.

A module called k times per pass is k sites; a site's index is its place among
the calls of the same module (or the same function from the same caller) in
one pass. The name is derived from the resulting :class:`~deadcheck.results.stats.SiteId`
by :func:`~deadcheck.results.stats.site_name`, never formatted or parsed elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from deadcheck.core.sites import SiteId, site_base

__all__ = ["SiteNamer", "SitePlace"]


@dataclass(frozen=True)
class SitePlace:
    """What a call's position in the model says about it (all but how often it runs)."""

    module: str
    function: str | None
    caller: str | None

    @cached_property
    def base(self) -> str:
        """The site's name without its index (asked on every call: worked out once)."""
        return site_base(self.module, self.function)


class SiteNamer:
    """Counts calls per pass, and remembers the most calls of each place in any pass."""

    def __init__(self) -> None:
        self._this_pass: dict[str, int] = {}
        self._most: dict[str, int] = {}

    def new_pass(self) -> None:
        self._this_pass.clear()

    def index(self, place: SitePlace) -> int:
        """The index of this call of ``place`` in the current pass."""
        base = place.base
        index = self._this_pass.get(base, 0)
        self._this_pass[base] = index + 1
        if index >= self._most.get(base, 0):
            self._most[base] = index + 1
        return index

    def site(self, place: SitePlace, index: int) -> SiteId:
        """The identity of call ``index`` of ``place``, with the occurrences seen so far."""
        return SiteId(
            module=place.module,
            function=place.function,
            index=index,
            occurrences=self._most.get(place.base, 1),
            caller=place.caller,
        )
