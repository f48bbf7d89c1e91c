"""deadcheck's errors, each carrying the exit status the command line gives it.

Every error the library raises on purpose derives from :class:`DeadcheckError`,
so the command line maps all of them in one place: unusable input is one line
and exit status 2; the user's own code failing is its traceback and 3.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "EXIT_FINDINGS",
    "EXIT_INTERRUPTED",
    "EXIT_MODEL",
    "EXIT_OK",
    "EXIT_USAGE",
    "DeadcheckError",
    "InputError",
    "ModelError",
    "RecordingError",
    "SwapError",
    "TrainingModeWarning",
]

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
#: Ctrl-C: the shell's convention (128 + SIGINT); a partial scan never passes a gate.
EXIT_INTERRUPTED = 130


class DeadcheckError(Exception):
    """Base of deadcheck's own errors; ``exit_code`` is what the command line exits with."""

    exit_code = EXIT_USAGE


class InputError(DeadcheckError, ValueError):
    """Bad usage or unusable input: shown as one line, exit status 2.

    ``option`` names the parameter the message is about, in Python's spelling
    (``input_shape``); the message then starts with it. Library messages name no
    command-line flags: the command line shows ``--input-shape`` in its place.
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        if option is not None and not message.startswith(option):
            raise ValueError(f"an InputError about {option} must start with it: {message!r}")
        super().__init__(message)
        self.option = option

    def cli_message(self) -> str:
        """The message as the command line shows it, with the option as its flag."""
        text = str(self)
        if self.option is None:
            return text
        return "--" + self.option.replace("_", "-") + text[len(self.option) :]


class RecordingError(DeadcheckError, RuntimeError):
    """The recording cannot give trustworthy counts (the message says why); exit status 2."""


class SwapError(DeadcheckError, ValueError):
    """The swap cannot be done as asked; the message names each site and why. Exit status 2."""


class TrainingModeWarning(UserWarning):
    """``record()`` saw a model in training mode: Dropout and BatchNorm change the counts.

    Silence it with ``warnings.filterwarnings("ignore", category=deadcheck.TrainingModeWarning)``,
    or with ``recorder.warn_training = False``.
    """


class Stage(str, Enum):
    """Which of the user's code raised a :class:`ModelError`."""

    IMPORT = "import"
    BUILD = "build"
    INPUTS = "inputs"
    FORWARD = "forward"


class ModelError(DeadcheckError):
    """The user's own code raised: shown with its traceback, exit status 3.

    ``__cause__`` holds the user's exception; ``stage`` says which of the
    user's code it was (a forward pass, reading batches, building the model).
    """

    exit_code = EXIT_MODEL

    def __init__(
        self,
        where: str,
        original: BaseException,
        hint: str | None = None,
        *,
        stage: Stage = Stage.BUILD,
    ) -> None:
        super().__init__(f"{where}: {type(original).__name__}: {original}")
        self.where = where
        self.original = original
        self.hint = hint
        self.stage = stage
