"""One call that does what ``deadcheck scan`` does: feed batches, record, analyze.

The model is run without gradients and, unless ``train=True``, in eval mode;
the training flag of every submodule is restored afterwards. Errors raised by
the user's model or batches come out as :class:`~deadcheck.core.errors.ModelError`
so a caller can tell them from deadcheck's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch

from deadcheck.core.errors import InputError, ModelError, Stage
from deadcheck.core.options import RecordingKwargs, RecordingOptions, recording_options
from deadcheck.core.thresholds import Thresholds
from deadcheck.recording.distributed import share_of_batches
from deadcheck.recording.feeding import scan
from deadcheck.results.report import Report
from deadcheck.workflows.loading import (
    Target,
    load_plan,
    load_target,
    load_weights,
    parse_device,
    parse_shape,
    random_batches,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["TargetScan", "check_batches", "inputs_for", "scan_target"]


def check_batches(batches: int | None) -> None:
    """Refuse a batch count that is not positive (None: every batch there is)."""
    if batches is not None and batches <= 0:
        raise InputError(f"batches must be positive, got {batches}", option="batches")


def inputs_for(
    target: Target,
    *,
    input_shape: tuple[int, ...] | None = None,
    batches: int | None = None,
    seed: int = 0,
) -> tuple[Iterable[Any], int | None]:
    """The batches a scan of ``target`` feeds, and how many (None when unknown).

    An explicit ``input_shape`` wins; then the target's ``batches()``, then its
    example input, then the default shape of a torchvision model.
    """
    check_batches(batches)
    if input_shape is None and target.batches is not None:
        try:
            source = target.batches()
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
            raise ModelError(f"{target.name}: batches()", error, stage=Stage.INPUTS) from error
        try:
            iter(source)
        except TypeError:
            raise InputError(
                f"{target.name}: batches() returned {type(source).__name__}, not an iterable "
                "of batches (yield them, or return a list or DataLoader)"
            ) from None
        return (source if batches is None else islice(source, batches)), batches
    if input_shape is None and target.example is not None:
        return [target.example], 1
    shape = input_shape or target.default_shape
    if shape is None:
        raise InputError(
            f"{target.name} brings no inputs: define batches() or example_input in it, "
            "or give an input shape (--input-shape)"
        )
    count = batches or 4
    return random_batches(shape, count, seed=seed), count


@dataclass(frozen=True)
class TargetScan:
    """What :func:`scan_target` did: the loaded target, its report, and how many batches it fed."""

    target: Target
    report: Report
    #: Batches fed on this rank, and how many were asked for (None: every one there was).
    fed: int
    asked: int | None
    #: The input shape given, from which the inputs were drawn at random (None: not given).
    input_shape: tuple[int, ...] | None
    #: The first batches fed, as given (``keep=``), to check a repair against.
    kept: tuple[Any, ...] = ()


def scan_target(
    spec: str,
    *,
    weights: str | None = None,
    plan: str | None = None,
    allow_pickle: bool = False,
    input_shape: str | tuple[int, ...] | None = None,
    batches: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    train: bool = False,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], None] | None = None,
    keep: int = 0,
    options: RecordingOptions | None = None,
    **kwargs: Unpack[RecordingKwargs],
) -> TargetScan:
    """What ``deadcheck scan TARGET`` does, in one call: load, feed, record, analyze.

    Every argument is checked before anything is loaded or run. ``plan`` (a
    saved swap plan) is applied before ``weights`` load. Under an initialised
    process group each rank feeds its share of the batches and the counts are
    summed over ranks (start the group first, e.g. with
    :func:`deadcheck.recording.distributed.init_from_env`). The first ``keep``
    batches are kept in :attr:`TargetScan.kept`, to compare a repaired model on.
    """

    thresholds = thresholds or Thresholds()
    chosen = recording_options(options, kwargs)
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else input_shape
    check_batches(batches)
    where = parse_device(device) if not isinstance(device, torch.device) else device
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be an integer in [0, 2**63), got {seed}", option="seed")
    torch.manual_seed(seed)  # random initial weights come out the same on every run
    target = load_target(spec)
    if plan is not None:
        target.model = load_plan(target.model, plan)
    if weights is not None:
        load_weights(target.model, weights, allow_pickle=allow_pickle)
    if where is not None:
        target.model.to(where)
    inputs, total = inputs_for(target, input_shape=shape, batches=batches, seed=seed)
    inputs, total = share_of_batches(inputs, total)
    kept: list[Any] = []
    if keep > 0:
        inputs = _keeping(inputs, kept, keep)
    fed = 0

    def count(done: int) -> None:
        nonlocal fed
        fed = done
        if progress is not None:
            progress(done)

    report = scan(
        target.model,
        inputs,
        device=where,
        train=train,
        target=target.name,
        progress=count,
        thresholds=thresholds,
        loss=target.loss if chosen.gradients else None,
        options=chosen,
    )
    return TargetScan(target, report, fed, total, shape, tuple(kept))


def _keeping(inputs: Iterable[Any], kept: list[Any], keep: int) -> Iterator[Any]:
    for batch in inputs:
        if len(kept) < keep:
            kept.append(batch)
        yield batch
