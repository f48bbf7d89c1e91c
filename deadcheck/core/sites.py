"""Where a site is, as data: names are derived from it, never parsed back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deadcheck.core.kinds import kind

__all__ = ["SiteFacts", "SiteId", "UncountedSite", "site_base", "site_name"]


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
    #: Set when the cause is the unit axis the user gave for this site: that axis.
    given_axis: int | None = None
    #: How the given axis fails to fit (with ``given_axis``): "out of range for a rank-2 ...".
    axis_problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site.name, "why": self.why}


class SiteFacts:
    """What a site is, read from its ``id``, ``kind`` and ``axis_source``: one set of properties
    for ``SiteStats`` and ``SiteReport`` alike."""

    id: SiteId
    kind: str
    axis_source: str | None

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
    def axis_assumed(self) -> bool:
        """Whether the unit axis was assumed from the rank (no producer's output matched)."""
        return (self.axis_source or "").startswith("assumed")

    @property
    def family(self) -> bool:
        """A ReLU-family site, for which "dead" and the zero fraction mean something."""
        return kind(self.kind).family
