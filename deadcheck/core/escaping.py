"""Text from the model (module names, report fields) made safe for a terminal or Markdown.

A module name is whatever the model's author chose, and a report or plan may
come from anywhere: an escape sequence in a name would clear the screen or
set the terminal's title when the table prints, and a backtick, pipe or HTML
tag would break out of its code span in a pull-request comment.
"""

from __future__ import annotations

import html
import re

__all__ = ["md_code", "md_text", "terminal"]

#: C0 and C1 control characters (and DEL), which a terminal may act on.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escaped(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def terminal(text: str) -> str:
    """``text`` with every control character but newline and tab shown as ``\\xNN``."""
    return _CONTROL.sub(_escaped, text)


def md_code(text: str) -> str:
    """``text`` as one Markdown code span that nothing in it can end, for a table cell."""
    text = _CONTROL.sub(_escaped, text).replace("\n", " ").replace("\t", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    body = text.replace("|", "\\|")
    return f"{fence}{pad}{body}{pad}{fence}"


def md_text(text: str) -> str:
    """``text`` as plain Markdown table-cell text: no HTML, no code spans, no cell breaks."""
    text = _CONTROL.sub(_escaped, text).replace("\n", " ")
    text = html.escape(text, quote=False)
    return re.sub(r"([`|])", r"\\\1", text)
