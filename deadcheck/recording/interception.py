"""See functional activation calls (``F.relu`` in forward code) through a function mode.

One :class:`~torch.overrides.TorchFunctionMode` per thread (torch keeps the
mode stack per thread) serves every recorder watching on that thread, which
keeps nesting trivial: it is pushed when the first watcher starts watching
and popped when the last one stops, and every family call is shown to each
watcher that is watching there. A :class:`Watch` is one recorder's
handle on it, counting how many of its modules that may make such calls are
running, so the mode is active only inside them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from deadcheck.recording.activations import CALLS, ActivationCall

__all__ = ["Watch"]

#: Called with the call, the tensor counted (PReLU: its input), and the output (or None).
#: (the call, the tensor counted, the output, the input while intact: None after in place)
Callback = Callable[[ActivationCall, torch.Tensor, torch.Tensor | None, torch.Tensor | None], None]


class _Interceptor(TorchFunctionMode):
    """The mode of one thread: torch keeps a function-mode stack per thread."""

    def __init__(self) -> None:
        super().__init__()
        self.active: list[Watch] = []
        self.entered = False

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        try:
            parser = CALLS.get(func)
        except TypeError:  # an unhashable callable: not one of ours
            parser = None
        out = func(*args, **kwargs)
        if parser is not None and args and isinstance(args[0], torch.Tensor):
            call = parser(args, dict(kwargs))
            if call is not None:
                # The output has the input's sign (and is final, even for in-place
                # forms), except for PReLU, whose learned slope may be negative and
                # which never works in place: its input is still intact.
                counted = (
                    args[0] if call.kind == "PReLU" or not isinstance(out, torch.Tensor) else out
                )
                output = out if isinstance(out, torch.Tensor) else None
                # The input is still the pre-activation unless the call worked in place.
                pre = args[0] if args[0] is not out else None
                for watch in tuple(self.active):
                    watch.callback(call, counted, output, pre)
        return out

    def activate(self, watch: Watch) -> None:
        self.active.append(watch)
        if not self.entered:
            self.__enter__()
            self.entered = True

    def deactivate(self, watch: Watch) -> None:
        """Stop showing calls to ``watch``; off this thread's mode stack when none is left.

        Called from another thread (a recorder detached elsewhere), the watch is
        dropped but the mode stays on its own thread's stack, which only that
        thread may pop; it is popped there when that thread's next watch ends.
        """
        if watch in self.active:
            self.active.remove(watch)
        if not self.active and self.entered and _local.__dict__.get("mode") is self:
            self.entered = False
            self.__exit__(None, None, None)


_local = threading.local()


def _mode() -> _Interceptor:
    """This thread's interceptor."""
    mode = _local.__dict__.get("mode")
    if mode is None:
        mode = _local.mode = _Interceptor()
    return mode


class Watch:
    """One recorder's view of the mode: ``callback`` sees each family call while entered.

    :meth:`enter` and :meth:`exit` nest (a module whose code may call ``F.relu``
    inside another); the mode watches from the outermost enter to its exit, on
    the thread that entered (each thread has its own mode, as torch keeps one
    mode stack per thread).
    """

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self._depth = 0
        self._mode: _Interceptor | None = None

    @property
    def watching(self) -> bool:
        """Whether this recorder's calls are being watched now."""
        return self._depth > 0

    def enter(self) -> None:
        self._depth += 1
        if self._depth == 1:
            self._mode = _mode()
            self._mode.activate(self)

    def exit(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._mode is not None:
            self._mode.deactivate(self)
            self._mode = None

    def stop(self) -> None:
        """Stop watching now, however deep (a forward pass that raised)."""
        self._depth = 0
        if self._mode is not None:
            self._mode.deactivate(self)
            self._mode = None
