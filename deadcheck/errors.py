"""The two kinds of failure the command line tells apart, with their exit codes."""

from __future__ import annotations

__all__ = ["EXIT_FINDINGS", "EXIT_MODEL", "EXIT_OK", "EXIT_USAGE", "InputError", "ModelError"]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_MODEL = 3


class InputError(Exception):
    """Bad usage or unusable input: shown as one line, exit status 2."""

    exit_code = EXIT_USAGE


class ModelError(Exception):
    """The user's own code raised: shown with its traceback, exit status 3.

    ``__cause__`` holds the user's exception.
    """

    exit_code = EXIT_MODEL

    def __init__(self, where: str, original: BaseException, hint: str | None = None) -> None:
        super().__init__(f"{where}: {type(original).__name__}: {original}")
        self.where = where
        self.original = original
        self.hint = hint
