"""JSON that every standard parser reads: non-finite numbers become ``null``.

Python's ``json`` writes NaN and Infinity bare, which is not JSON; a dormant
sum over NaN activations or a PReLU with a NaN weight would otherwise make a
report that ``jq``, JavaScript and most CI tools refuse. The finding that says
why a figure is missing (``nan-activations``) stays in the report.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "finite"]


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """Indented JSON text with a final newline; never a bare NaN or Infinity."""
    return json.dumps(finite(value), indent=2, allow_nan=False) + "\n"
