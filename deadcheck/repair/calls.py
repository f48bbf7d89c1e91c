"""Swap a module's own activation calls at run time, where its code cannot be rewritten.

A functional call in forward code that torch.fx cannot trace (RAFT's root
``F.relu``, code with data-dependent branches) is swapped the way recording
sees it: while the caller's forward runs, a function mode catches the calls
its own code makes (not its children's) and counts them per function, as the
recorder names them (``caller:relu#i``, the i-th call of a pass). The chosen
calls run the caller's new child module instead (a LeakyReLU, or an AxisPReLU
whose slopes are parameters of the caller, so they train, save and load with
strict state dicts); every other call runs as written.

What it costs: a function mode while the caller's forward runs, and a global
module hook pair that tells the caller's own calls from its children's, so
every module call inside the caller pays a few microseconds (measured in
``benchmarks/swap_calls.py``).

The wrapper is the caller's instance ``forward`` (a picklable object of this
module), so ``copy.deepcopy`` and ``torch.save(model)`` keep it, and a fresh
model gets it back from the plan (``deadcheck.swap(model, plan=...)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from deadcheck.recording.activations import parse_call

__all__ = ["PerCall", "SwappedCalls", "install_swapped_calls"]


def _in_place(func: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a family call writes its result into its input (``F.relu(x, inplace=True)``)."""
    name = str(getattr(func, "__name__", "") or func).split(".")[0]
    if name.endswith("_") and not name.endswith("__"):
        return True
    if func is F.relu:
        return bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
    return False


class SwappedCalls:
    """A module's forward with its chosen own activation calls replaced by child modules.

    ``swaps`` maps a function name ("relu") to {call index: child name};
    ``occurrences`` gives how many such calls the caller's code makes per
    pass. A call's index is its place among the caller's own calls of that
    function, counted cyclically: call k is index ``k % occurrences``, which
    is the recorder's naming whenever a pass makes every call it named.
    """

    def __init__(
        self,
        module: nn.Module,
        swaps: dict[str, dict[int, str]],
        occurrences: dict[str, int],
    ) -> None:
        self.module = module
        #: The forward this one wraps: the instance's own, else the class's.
        self.inner: Callable[..., Any] | None = module.__dict__.get("forward")
        self.swaps = swaps
        self.occurrences = occurrences
        self._calls: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_calls"] = {}
        return state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        mode = _CallMode(self)
        handles = _depth_hooks(mode)
        try:
            with mode:
                return self._forward(*args, **kwargs)
        except BaseException:
            self._calls.clear()  # a pass cut short: the next starts at call 0
            raise
        finally:
            for handle in handles:
                handle.remove()

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.inner is not None:
            return self.inner(*args, **kwargs)
        return type(self.module).forward(self.module, *args, **kwargs)

    def replacement(self, function: str) -> nn.Module | None:
        """The child module that runs this own call of ``function``, or None to run it as is."""
        chosen = self.swaps.get(function)
        if chosen is None:
            return None
        count = self._calls.get(function, 0)
        self._calls[function] = count + 1
        name = chosen.get(count % max(1, self.occurrences.get(function, 1)))
        return None if name is None else self.module.get_submodule(name)


def _depth_hooks(mode: _CallMode) -> list[RemovableHandle]:
    """Global hooks that count the module calls running inside one call of the caller."""
    thread = threading.get_ident()

    def pre(module: nn.Module, args: Any) -> None:
        if threading.get_ident() == thread:
            mode.depth += 1

    def post(module: nn.Module, args: Any, output: Any) -> None:
        if threading.get_ident() == thread:
            mode.depth -= 1

    hooks = torch.nn.modules.module
    return [
        hooks.register_module_forward_pre_hook(pre),
        hooks.register_module_forward_hook(post, always_call=True),
    ]


class _CallMode(TorchFunctionMode):
    """Runs the caller's own chosen calls through their new modules (one call of the caller)."""

    def __init__(self, owner: SwappedCalls) -> None:
        super().__init__()
        self.owner = owner
        #: Module calls running below the caller: calls made there are not its own.
        self.depth = 0

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        owner = self.owner
        if self.depth == 0 and args and isinstance(args[0], torch.Tensor):
            call = parse_call(func, args, dict(kwargs))
            new = owner.replacement(call.function) if call is not None else None
            if new is not None:
                out = new(args[0])
                if _in_place(func, args, kwargs):
                    return args[0].copy_(out)
                return out
        return func(*args, **kwargs)


def install_swapped_calls(
    caller: nn.Module, swaps: dict[str, dict[int, str]], occurrences: dict[str, int]
) -> None:
    """Give ``caller`` a forward that swaps the chosen own calls (merging with one it has)."""
    current = caller.__dict__.get("forward")
    if isinstance(current, SwappedCalls):
        for function, chosen in swaps.items():
            current.swaps.setdefault(function, {}).update(chosen)
        current.occurrences.update(occurrences)
        return
    caller.forward = SwappedCalls(caller, swaps, occurrences)  # type: ignore[method-assign]


class PerCall(nn.Module):
    """One activation module called at several sites, given one module per call.

    A module run several times per pass (a ReLU shared by a block's layers, one
    called in a loop) whose calls need modules of their own (PReLUs of
    different sizes, or only some calls swapped), where the caller's code does
    not trace: call k runs ``slots[k % len(slots)]``, which is the recorder's
    naming (``relu#k``) whenever a pass makes every call it named.
    """

    def __init__(self, slots: list[nn.Module]) -> None:
        super().__init__()
        self.slots = nn.ModuleList(slots)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slot = self.slots[self.calls % len(self.slots)]
        self.calls += 1
        return slot(x)
