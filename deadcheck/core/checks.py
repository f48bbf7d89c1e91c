"""The checks every reader of deadcheck's own JSON shares: one meaning of "a number", "a count".

A report or plan read back from disk may have been edited by hand or cut
short; each check raises :class:`~deadcheck.core.errors.InputError` naming
the first field that is wrong, never a ``KeyError`` or ``TypeError``.
"""

from __future__ import annotations

import math
from typing import Any

from deadcheck.core.errors import InputError

__all__ = ["check", "count", "counts", "floats", "is_number", "is_share", "text_or_none"]


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (a 5,000-digit integer is not one either)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def is_share(value: Any) -> bool:
    """A :func:`is_number` in [0, 1]."""
    return is_number(value) and 0.0 <= value <= 1.0


def check(ok: bool, message: str, what: str = "report") -> None:
    """Refuse a document of deadcheck's (``what``: report, plan) that is not one."""
    if not ok:
        raise InputError(f"not a deadcheck {what}: {message}")


def count(value: Any, where: str) -> int:
    """``value`` as a count (an int in [0, 2**63))."""
    check(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63,
        f"{where} is not a count",
    )
    return int(value)


def counts(values: Any, where: str = "a list of unit numbers") -> tuple[int, ...]:
    """A JSON list of counts (unit numbers, per-unit counts) as a tuple."""
    check(isinstance(values, list), f"{where} is not a list")
    return tuple(count(v, f"a value of {where}") for v in values)


def floats(values: Any, where: str) -> tuple[float, ...]:
    """A JSON list of finite numbers as a tuple of floats."""
    check(isinstance(values, list), f"{where} is not a list")
    check(all(is_number(v) for v in values), f"{where} holds a value that is not a number")
    return tuple(float(v) for v in values)


def text_or_none(value: Any, where: str) -> str | None:
    """A JSON string or null."""
    check(value is None or isinstance(value, str), f"{where} is not text")
    return value
