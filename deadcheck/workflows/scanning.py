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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deadcheck.core.errors import InputError, ModelError, Stage
from deadcheck.core.options import RecordingKwargs, RecordingOptions, recording_options
from deadcheck.core.thresholds import Thresholds
from deadcheck.recording.distributed import share_of_batches
from deadcheck.recording.feeding import scan
from deadcheck.results.report import Report
from deadcheck.workflows.data import InputsOnly, data_batches, inputs_only
from deadcheck.workflows.hub import WEIGHT_NAME, torchvision_weights
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

__all__ = ["Inputs", "TargetScan", "check_batches", "inputs_for", "random_tokens", "scan_target"]


def check_batches(batches: int | None) -> None:
    """Refuse a batch count that is not positive (None: every batch there is)."""
    if batches is not None and batches <= 0:
        raise InputError(f"batches must be positive, got {batches}", option="batches")


@dataclass(frozen=True)
class Inputs:
    """What a scan feeds: the batches, how many (None: unknown), and what they are."""

    batches: Iterable[Any]
    count: int | None
    #: Where the batches come from, in words ("all 40 images of val/ ..."), or None.
    description: str | None = None


def _token_vocab(target: Target, vocab: int | None) -> int:
    """The vocabulary size for random token ids: given, the target's, or its first Embedding's."""
    if vocab is not None:
        if vocab <= 0:
            raise InputError(f"vocab must be positive, got {vocab}", option="vocab")
        return vocab
    if target.vocab is not None:
        return target.vocab
    for module in target.model.modules():
        if isinstance(module, nn.Embedding):
            return module.num_embeddings
    raise InputError(
        "input_dtype long: random token ids need a vocabulary size (--vocab N); "
        f"{target.name} has no nn.Embedding to take it from",
        option="vocab",
    )


def inputs_for(
    target: Target,
    *,
    input_shape: tuple[int, ...] | None = None,
    batches: int | None = None,
    seed: int = 0,
    data: str | Path | None = None,
    batch_size: int = 8,
    image_size: int | None = None,
    seq_len: int | None = None,
    input_dtype: str | None = None,
    vocab: int | None = None,
) -> Inputs:
    """The batches a scan of ``target`` feeds.

    ``data`` (an image folder, a tensor file, a text file) wins; then an
    explicit ``input_shape``; then the target's ``batches()`` (labels taken
    off where the model does not take them), then its example input, then
    its default shape (random: float, or token ids below the vocabulary size
    for ``input_dtype="long"`` and ``hf:`` targets).
    """
    check_batches(batches)
    if input_dtype not in (None, "float", "long"):
        raise InputError(
            f"input_dtype must be float or long, got {input_dtype!r}", option="input_dtype"
        )
    if data is not None:
        length = seq_len or min(128, (target.default_shape or (0, 128))[-1] * 4)
        found = data_batches(
            data,
            preprocess=target.preprocess,
            tokenizer=target.tokenizer,
            batch_size=batch_size,
            image_size=image_size,
            seq_len=length,
            limit=batches,
        )
        return Inputs(found.batches, found.count, found.description)
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
        chosen = source if batches is None else islice(source, batches)
        return Inputs(inputs_only(chosen, target.model), batches)
    if input_shape is None and target.example is not None:
        return Inputs([target.example], 1)
    shape = input_shape or target.default_shape
    if shape is None:
        raise InputError(
            f"{target.name} brings no inputs: define batches() or example_input in it, "
            "give an input shape (--input-shape), or data (--data)"
        )
    count = batches or 4
    tokens = input_dtype == "long" or (input_dtype is None and target.vocab is not None)
    if tokens:
        size = _token_vocab(target, vocab)
        return Inputs(
            random_tokens(shape, count, vocab=size, seed=seed),
            count,
            f"{count} batch(es) of random token ids of shape {shape} below {size}",
        )
    return Inputs(random_batches(shape, count, seed=seed), count)


def random_tokens(
    shape: tuple[int, ...], count: int, *, vocab: int, seed: int = 0
) -> Iterator[torch.Tensor]:
    """``count`` batches of uniform random token ids in ``[0, vocab)``, seeded."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        yield torch.randint(0, vocab, shape, generator=generator)


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
    #: What was fed, in words (``--data``: which part of the data set), and notes for the user.
    inputs: str | None = None
    notes: tuple[str, ...] = ()


def scan_target(
    spec: str,
    *,
    weights: str | None = None,
    plan: str | None = None,
    allow_pickle: bool = False,
    allow_download: bool = False,
    input_shape: str | tuple[int, ...] | None = None,
    batches: int | None = None,
    seed: int = 0,
    data: str | Path | None = None,
    batch_size: int = 8,
    image_size: int | None = None,
    seq_len: int | None = None,
    input_dtype: str | None = None,
    vocab: int | None = None,
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
    target = load_target(spec, allow_pickle=allow_pickle, allow_download=allow_download)
    if plan is not None:
        target.model = load_plan(target.model, plan)
    if weights is not None:
        weights = _named_weights(target, weights)
        load_weights(target.model, weights, allow_pickle=allow_pickle)
    if where is not None:
        target.model.to(where)
    fed_inputs = inputs_for(
        target,
        input_shape=shape,
        batches=batches,
        seed=seed,
        data=data,
        batch_size=batch_size,
        image_size=image_size,
        seq_len=seq_len,
        input_dtype=input_dtype,
        vocab=vocab,
    )
    inputs, total = share_of_batches(fed_inputs.batches, fed_inputs.count)
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
    source = fed_inputs.batches
    note = source.note if isinstance(source, InputsOnly) else None
    return TargetScan(
        target,
        report,
        fed,
        total,
        shape,
        tuple(kept),
        fed_inputs.description,
        (note,) if note else (),
    )


def _named_weights(target: Target, weights: str) -> str:
    """A torchvision weight name (``DEFAULT``) as its cached file; a path as it is."""
    named = target.name.startswith("torchvision:") and WEIGHT_NAME.match(weights)
    if named and not Path(weights).exists():
        path, preprocess = torchvision_weights(target.name.split(":", 1)[1], weights)
        target.preprocess = preprocess
        return str(path)
    return weights


def _keeping(inputs: Iterable[Any], kept: list[Any], keep: int) -> Iterator[Any]:
    for batch in inputs:
        if len(kept) < keep:
            kept.append(batch)
        yield batch
