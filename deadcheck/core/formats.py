"""The text formats a report or a diff can be written in: the one list the CLI offers."""

from __future__ import annotations

from typing import Literal

__all__ = ["FORMATS", "Format"]

Format = Literal["table", "json", "markdown"]
FORMATS: tuple[Format, ...] = ("table", "json", "markdown")
