"""Findings as data: what a code means is an enum member, never a string compared by hand.

Codes and severities are ``str`` enums, so they compare equal to their JSON
text (``Code.DEAD_LAYER == "dead-layer"``) and print as it; everything that
decides on them (the CLI's gate, the Monitor, ``diff``) uses the members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from deadcheck.core.checks import check, counts

__all__ = ["SEVERITIES", "Code", "Finding", "Severity", "at_or_above", "severity", "worst"]


class _Text(str, Enum):
    """A str enum that prints and formats as its value on every Python."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)

    # Hash as the text, so a member and its JSON text are one key of a dict or set.
    def __hash__(self) -> int:
        return str.__hash__(self)


class Severity(_Text):
    """How bad a finding is; members are in order, mildest first."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return SEVERITIES.index(self)


#: Severities from mildest to worst.
SEVERITIES: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.ERROR)


class Code(_Text):
    """Every finding deadcheck makes; ``docs/concepts.md`` explains each."""

    UNCOUNTED_SITE = "uncounted-site"
    NAN_ACTIVATIONS = "nan-activations"
    DEAD_LAYER = "dead-layer"
    DYING_LAYER = "dying-layer"
    DEAD_UNITS = "dead-units"
    LINEAR_UNITS = "linear-units"
    DORMANT_UNITS = "dormant-units"
    STARVED_UNITS = "starved-units"
    GRADIENT_UNREAD = "gradient-unread"
    SATURATED_UNITS = "saturated-units"
    NEAR_LINEAR_SLOPE = "near-linear-slope"
    TINY_SLOPE = "tiny-slope"
    NEGATIVE_SLOPE = "negative-slope"
    STEEP_SLOPE = "steep-slope"
    RISING_DEAD_FRACTION = "rising-dead-fraction"


def severity(value: Any) -> Severity:
    """``value`` (a Severity or its text) as a Severity; ValueError names the choices."""
    try:
        return Severity(value)
    except ValueError:
        raise ValueError(
            f"severity must be one of {', '.join(SEVERITIES)}, got {value!r}"
        ) from None


def worst(severities: Iterable[Severity | str]) -> Severity | None:
    """The worst of ``severities`` (None for none): the one ordering of :data:`SEVERITIES`."""
    ranks = [Severity(s).rank for s in severities]
    return SEVERITIES[max(ranks)] if ranks else None


def at_or_above(value: Severity | str, bar: Severity | str) -> bool:
    """Whether severity ``value`` is at or above ``bar``: the one comparison of severities."""
    return Severity(value).rank >= Severity(bar).rank


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) at one site."""

    code: Code
    severity: Severity
    site: str
    message: str
    units: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "severity": self.severity.value,
            "site": self.site,
            "message": self.message,
            "units": list(self.units),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Finding:
        """A finding from its JSON form; InputError names the first field that is wrong."""
        check(isinstance(data, dict), "a finding is not an object")
        for key in ("code", "site", "message"):
            check(isinstance(data.get(key), str), f"a finding's {key} is not text")
        code, level = data["code"], data.get("severity")
        check(code in {c.value for c in Code}, f"a finding's code {code[:30]!r} is unknown")
        known = isinstance(level, str) and level in {s.value for s in SEVERITIES}
        check(known, f"a finding's severity is {str(level)[:20]!r}")
        return cls(
            Code(code),
            Severity(level),
            data["site"],
            data["message"],
            counts(data.get("units", [])),
        )
