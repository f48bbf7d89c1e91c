"""The per-unit statistics, one file each; :data:`STATS` is every one, in ``order``.

Adding a statistic is adding a file here that defines ``STAT`` (a
:class:`~deadcheck.stats.base.Stat`): recording, the JSON report, the table
and Markdown columns, TensorBoard and ``diff`` find it through :data:`STATS`.
See ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
import pkgutil

from deadcheck.stats.base import Stat

__all__ = ["STATS", "Stat", "by_name"]


def _discover() -> tuple[Stat, ...]:
    found: list[Stat] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        stat = getattr(module, "STAT", None)
        if not isinstance(stat, Stat):
            raise ImportError(f"deadcheck.stats.{info.name} defines no STAT")
        found.append(stat)
    names = [s.name for s in found]
    if len(set(names)) != len(names):
        raise ImportError(f"two statistics share a name: {sorted(names)}")
    return tuple(sorted(found, key=lambda s: (s.order, s.name)))


#: Every statistic, in order: findings, columns and JSON figures follow it.
STATS: tuple[Stat, ...] = _discover()


def by_name(name: str) -> Stat:
    """The statistic called ``name``; KeyError names the ones there are."""
    for stat in STATS:
        if stat.name == name:
            return stat
    raise KeyError(f"no statistic {name!r}; there are {', '.join(s.name for s in STATS)}")
