"""Recycle dormant units during training, every so many steps, from that window's statistics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from torch import nn

from deadcheck.core.errors import InputError
from deadcheck.core.options import RecordingKwargs, RecordingOptions, recording_options
from deadcheck.recording.recorder import Recorder
from deadcheck.repair.recycling import RecycleResult, recycle
from deadcheck.results.stats import Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Recycler"]


class Recycler:
    """Recycle dormant units every ``every`` training steps, from that window's statistics.

    >>> recycler = deadcheck.Recycler(model, optimizer, every=200, tau=0.1)
    >>> for batch in loader:
    ...     loss(model(batch)).backward(); optimizer.step()
    ...     recycler.step()
    >>> recycler.close()

    Like a Monitor it attaches when made and detaches on ``close()``. Recording
    options are :func:`~deadcheck.recording.recorder.record`'s (dormant sums
    are always on). ``recorder`` shares one that is already recording the
    model (a Monitor's: the framework callbacks do), so the model carries one
    set of hooks; whoever owns that recorder's windows then calls
    :meth:`recycle_from` with them instead of :meth:`step`.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: Any = None,
        *,
        every: int = 100,
        tau: float = 0.1,
        options: RecordingOptions | None = None,
        recorder: Recorder | None = None,
        **kwargs: Unpack[RecordingKwargs],
    ) -> None:
        if every < 1:
            raise InputError(f"every must be at least 1, got {every}", option="every")
        if not 0.0 <= tau < 1.0:
            raise InputError(f"tau must be in [0, 1), got {tau}", option="tau")
        if recorder is not None and (options is not None or kwargs):
            raise ValueError("pass a recorder or recording options, not both")
        self.model = model
        self.optimizer = optimizer
        self.every = every
        self.tau = tau
        self.history: list[RecycleResult] = []
        self._steps = 0
        if recorder is None:
            chosen = recording_options(options, {**kwargs, "dormant_sums": True})
            recorder = Recorder(model, chosen)
        self._recorder = recorder
        if not recorder.attached:
            recorder.attach()

    @property
    def recorder(self) -> Recorder:
        return self._recorder

    def step(self) -> RecycleResult | None:
        """Count one step; every ``every`` steps recycle, reset the window, return what was done."""
        self._steps += 1
        if self._steps % self.every:
            return None
        stats = self._recorder.stats()
        self._recorder.reset()
        return self.recycle_from(stats)

    def recycle_from(self, stats: Stats) -> RecycleResult:
        """Recycle from one window's ``stats`` now, and keep the result in ``history``."""
        result = recycle(self.model, stats, tau=self.tau, optimizer=self.optimizer)
        self.history.append(result)
        return result

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Forward passes inside this block (evaluation, say) are not counted."""
        self._recorder.detach()
        try:
            yield
        finally:
            self._recorder.attach()

    def close(self) -> None:
        """Detach from the model. Safe to call twice."""
        self._recorder.detach()

    def __enter__(self) -> Recycler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
