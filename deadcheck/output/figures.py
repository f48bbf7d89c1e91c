"""What every deadcheck figure shares: a headless matplotlib, and one way to hand back its bytes.

matplotlib is imported on first use, with the Agg backend, so importing
deadcheck never opens a window or slows a command that draws nothing.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

__all__ = ["PLOT_FORMATS", "finish", "plot_format", "pyplot"]

#: File suffixes a plot can be written as, and the format matplotlib writes for each.
PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpg", ".jpeg": "jpg"}


def pyplot() -> Any:
    """``matplotlib.pyplot``, on the Agg backend (an optional heavy import: done here, late)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def finish(fig: Any, path: str | Path | None, format: str) -> bytes:
    """Render ``fig`` as ``format``, close it, write it to ``path`` if given; the bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=format, dpi=110)
    pyplot().close(fig)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def plot_format(path: str | Path) -> str:
    """The image format a path's suffix names; ValueError for a suffix no format has."""
    suffix = Path(path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        raise ValueError(
            f"cannot tell the image format of {Path(path).name!r}: name it "
            + ", ".join(sorted(PLOT_FORMATS))
        )
    return PLOT_FORMATS[suffix]
