"""See functional activation calls (``F.relu`` in forward code) through one shared function mode.

A single :class:`~torch.overrides.TorchFunctionMode` serves every active
recorder, which keeps nesting trivial: it is pushed when the first watcher
starts watching and popped when the last one stops, and every family call is
shown to each watcher that is watching. A :class:`Watch` is one recorder's
handle on it, counting how many of its modules that may make such calls are
running, so the mode is active only inside them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from deadcheck.activations import CALLS, ActivationCall

__all__ = ["Watch"]

#: Called with the call, the tensor counted (PReLU: its input), and the output (or None).
Callback = Callable[[ActivationCall, torch.Tensor, torch.Tensor | None], None]


class _Interceptor(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.active: list[Watch] = []

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
                for watch in self.active:
                    watch.callback(call, counted, output)
        return out

    def activate(self, watch: Watch) -> None:
        self.active.append(watch)
        if len(self.active) == 1:
            self.__enter__()

    def deactivate(self, watch: Watch) -> None:
        if watch in self.active:
            self.active.remove(watch)
            if not self.active:
                self.__exit__(None, None, None)


_INTERCEPTOR = _Interceptor()


class Watch:
    """One recorder's view of the shared mode: ``callback`` sees each family call while entered.

    :meth:`enter` and :meth:`exit` nest (a module whose code may call ``F.relu``
    inside another); the mode watches from the outermost enter to its exit.
    """

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self._depth = 0

    @property
    def watching(self) -> bool:
        """Whether this recorder's calls are being watched now."""
        return self._depth > 0

    def enter(self) -> None:
        self._depth += 1
        if self._depth == 1:
            _INTERCEPTOR.activate(self)

    def exit(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            _INTERCEPTOR.deactivate(self)

    def stop(self) -> None:
        """Stop watching now, however deep (a forward pass that raised)."""
        self._depth = 0
        _INTERCEPTOR.deactivate(self)
