"""Progress over a scan's batches: the batches done, of how many, the rate and the time left.

On a terminal it is one line on stderr, rewritten in place; in a notebook
(or wherever tqdm is installed and stderr is no terminal) a tqdm bar. The
command line uses the line (silent with ``--quiet`` or when stderr is no
terminal); ``scan(..., progress=True)`` picks one.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["ProgressLine", "progress_for"]


class ProgressLine:
    """``deadcheck: batch 3/10, 4.2 batch/s, 2s left`` on stderr, rewritten in place."""

    def __init__(self, total: int | None, *, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled
        self._start = time.monotonic()

    def __call__(self, done: int) -> None:
        self.done = done
        if self.enabled:
            line = self.line(done, time.monotonic() - self._start)
            sys.stderr.write(f"\r\033[K{line}")
            sys.stderr.flush()

    def line(self, done: int, elapsed: float) -> str:
        """The text: the total and the time left where known."""
        of = f"/{self.total}" if self.total else ""
        text = f"deadcheck: batch {done}{of}"
        if elapsed > 0 and done:
            rate = done / elapsed
            text += f", {rate:.3g} batch/s"
            if self.total and self.total > done:
                text += f", {(self.total - done) / rate:.0f}s left"
        return text

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class _Bar:
    """A tqdm bar (a widget in notebooks) fed the batches done."""

    def __init__(self, total: int | None) -> None:
        from tqdm.auto import tqdm

        self._bar: Any = tqdm(total=total, unit="batch", desc="deadcheck", leave=False)
        self._done = 0

    def __call__(self, done: int) -> None:
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        self._bar.close()


def progress_for(total: int | None) -> ProgressLine | _Bar:
    """The progress a user sees where they are: a line on a terminal, else tqdm if installed."""
    if sys.stderr.isatty():
        return ProgressLine(total)
    try:
        return _Bar(total)
    except ImportError:
        return ProgressLine(total, enabled=False)
