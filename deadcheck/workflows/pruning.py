"""What ``deadcheck prune TARGET`` does: scan, prune the dead units, and check the result.

The check is the point of an exact prune: the pruned model runs the batches
the units were judged on, side by side with the original, and its outputs
must match to float rounding (``PruneCheck.bound``); the time of a forward
pass is measured in interleaved pairs, so the ratio is a like-for-like one.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deadcheck.core.errors import SwapError
from deadcheck.recording.feeding import call_model, preserved, to_device
from deadcheck.repair.pruning import PruneResult, prune
from deadcheck.workflows.scanning import TargetScan, scan_target

__all__ = ["PruneCheck", "TargetPrune", "check_pruned", "prune_target"]

#: Batches a prune keeps from its scan to check the pruned model on.
CHECKED_BATCHES = 8


@dataclass(frozen=True)
class PruneCheck:
    """The pruned model against the original on the judged batches."""

    batches: int
    #: The largest |difference| of any output value, and the largest |output|.
    max_difference: float
    max_output: float
    #: Median over interleaved pairs of time(pruned) / time(original).
    time_ratio: float

    @property
    def bound(self) -> float:
        """What float rounding allows: 1e-4 of the outputs' scale (float32 sums got shorter)."""
        return 1e-4 * max(1.0, self.max_output)

    @property
    def equal(self) -> bool:
        return self.max_difference <= self.bound

    def to_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "max_difference": self.max_difference,
            "max_output": self.max_output,
            "bound": self.bound,
            "time_ratio": self.time_ratio,
        }


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
    elif hasattr(value, "__dataclass_fields__") or hasattr(value, "to_tuple"):  # HF outputs
        yield from _tensors(value.to_tuple() if hasattr(value, "to_tuple") else vars(value))


def _device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _timed(model: nn.Module, batch: Any) -> float:
    start = time.perf_counter()
    call_model(model, batch)
    first = next(_tensors(batch), None)
    if first is not None and first.device.type == "cuda":
        torch.cuda.synchronize(first.device)
    return time.perf_counter() - start


@torch.no_grad()
def check_pruned(
    original: nn.Module, pruned: nn.Module, batches: Sequence[Any], *, pairs: int = 5
) -> PruneCheck:
    """Compare ``pruned`` with ``original`` on ``batches`` (eval mode), and time both."""
    where = _device(original)
    fed = [to_device(b, where) for b in batches]
    worst, largest = 0.0, 0.0
    with preserved(original, False), preserved(pruned, False):
        for batch in fed:
            a = list(_tensors(call_model(original, batch)))
            b = list(_tensors(call_model(pruned, batch)))
            if [t.shape for t in a] != [t.shape for t in b]:
                raise SwapError("the pruned model's outputs have other shapes than the original's")
            for x, y in zip(a, b, strict=True):
                if x.numel():
                    worst = max(worst, float((x.double() - y.double()).abs().max()))
                    largest = max(largest, float(x.double().abs().max()))
        ratios = []
        for _ in range(pairs):
            plain = sum(_timed(original, batch) for batch in fed)
            small = sum(_timed(pruned, batch) for batch in fed)
            ratios.append(small / plain if plain > 0 else 1.0)
    return PruneCheck(len(fed), worst, largest, statistics.median(ratios) if ratios else 1.0)


@dataclass(frozen=True)
class TargetPrune:
    """A prune of a target: the scan it was judged on, what was pruned, and the check."""

    scan: TargetScan
    result: PruneResult
    check: PruneCheck | None


def prune_target(
    spec: str,
    *,
    sites: Iterable[str] | None = None,
    check_batches: int = CHECKED_BATCHES,
    **scan_options: Any,
) -> TargetPrune:
    """Scan ``spec`` as ``deadcheck scan`` does, prune its dead units, check on the batches.

    Raises :class:`SwapError` when the pruned model's outputs differ beyond
    float rounding on the judged batches (it never should: the units were
    exactly zero there), so a wrong prune is never written.
    """
    done = scan_target(spec, keep=check_batches, **scan_options)
    original = done.target.model
    result = prune(copy.deepcopy(original), done.report, sites=sites, inplace=True)
    check = None
    if done.kept and result.pruned:
        check = check_pruned(original, result.model, done.kept)
        if not check.equal:
            raise SwapError(
                f"the pruned model's outputs differ by {check.max_difference:.3g} on the "
                f"judged batches (allowed {check.bound:.3g}): not pruned. The model may be "
                "random in eval mode, or its batches differ between passes"
            )
    return TargetPrune(done, result, check)
