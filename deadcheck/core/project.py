"""Settings for a project's CI from ``[tool.deadcheck]`` in its ``pyproject.toml``.

A team pins its thresholds and gate once, next to its other tools' settings::

    [tool.deadcheck]
    dying = 0.4
    fail-on = "warning"
    activations = "all"

Every key is a command-line option's long name (``near-linear``,
``tiny-slope``, ``dormant``, ``fail-on``, ``fail-on-rise``, ``activations``,
``batches``, ...); it becomes that option's default for every command that
has it, so an option given on the command line always wins. The file is
found from the working directory upwards, as ruff and pytest find theirs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from deadcheck.core.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10)
    import tomli as tomllib

__all__ = ["find_pyproject", "project_settings"]


def find_pyproject(start: str | Path = ".") -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start`` with a ``[tool.deadcheck]`` table."""
    folder = Path(start).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text())
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if isinstance(data.get("tool", {}).get("deadcheck"), dict):
                return path
    return None


def project_settings(path: str | Path) -> dict[str, Any]:
    """The ``[tool.deadcheck]`` table of ``path``, keys as option names (``near_linear``)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InputError(f"{path}: cannot read [tool.deadcheck]: {error}") from None
    table = data.get("tool", {}).get("deadcheck", {})
    if not isinstance(table, dict):
        raise InputError(f"{path}: [tool.deadcheck] is not a table")
    settings = {}
    for key, value in table.items():
        if isinstance(value, (dict, list)) and key != "unit-axis":
            raise InputError(f"{path}: [tool.deadcheck] {key} is a {type(value).__name__}")
        settings[key.replace("-", "_")] = value
    return settings
