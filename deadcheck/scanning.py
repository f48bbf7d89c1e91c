"""One call that does what ``deadcheck scan`` does: feed batches, record, analyze.

The model is run without gradients and, unless ``train=True``, in eval mode;
the training flag of every submodule is restored afterwards. Errors raised by
the user's model or batches come out as :class:`~deadcheck.errors.ModelError`
so a caller can tell them from deadcheck's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import torch
from torch import nn

from deadcheck.analysis import Report, Thresholds, analyze
from deadcheck.errors import DeadcheckError, InputError, ModelError
from deadcheck.loading import Target, call_model, random_batches, to_device
from deadcheck.recording import record
from deadcheck.statistics import Stats

__all__ = [
    "TargetScan",
    "check_batches",
    "inputs_for",
    "model_device",
    "preserved",
    "scan",
    "scan_target",
]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a stateless model)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def preserved(model: nn.Module, train: bool) -> Iterator[None]:
    """Run ``model`` in train or eval mode and leave no trace of it.

    Training flags and buffers (BatchNorm running statistics, counters) are
    restored afterwards, and the global random state is forked so dropout in
    a training-mode scan does not shift the user's random stream.
    """
    flags = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    devices = [d for d in {b.device for b, _ in buffers} if d.type == "cuda"]
    try:
        with torch.random.fork_rng(devices=devices):
            model.train(train)
            yield
    finally:
        for module, flag in flags:
            module.training = flag
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)


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
            raise ModelError(f"{target.name}: batches()", error) from error
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


def _hint(model: nn.Module, batch: Any, error: BaseException) -> str | None:
    """A likely cause for a forward pass that rejected its batch, or None."""
    if isinstance(error, TypeError) and isinstance(batch, (tuple, list)) and len(batch) > 1:
        return (
            f"the batch is a {type(batch).__name__} of {len(batch)}, which deadcheck passes as "
            "that many positional arguments; if it is (inputs, labels) from a DataLoader, "
            "yield only the inputs: `for x, _ in loader: yield x`"
        )
    text = str(error)
    if isinstance(batch, torch.Tensor) and ("dtype" in text or "scalar type" in text):
        params = {p.dtype for p in model.parameters()}
        theirs = ", ".join(sorted(str(d).replace("torch.", "") for d in params)) or "none"
        return (
            f"the batch is {str(batch.dtype).replace('torch.', '')} and the model's parameters "
            f"are {theirs}: convert one to the other"
        )
    return None


def _check_unit_axis_names(unit_axis: Mapping[str, int], stats: Stats) -> None:
    """Refuse a unit axis given for a site that never ran: a typo must not pass silently."""
    ids = [*(site.id for site in stats.sites), *(u.site for u in stats.uncounted)]
    unknown = [key for key in unit_axis if not any(site.matches(key) for site in ids)]
    if unknown:
        listed = ", ".join(dict.fromkeys(site.name for site in ids)) or "none"
        raise InputError(
            f"a unit axis was given for {', '.join(repr(n) for n in unknown)}, but no site is "
            f"called that; sites are: {listed}"
        )
    for uncounted in stats.uncounted:
        given = [axis for key, axis in unit_axis.items() if uncounted.site.matches(key)]
        if given and "out of range" in uncounted.why:
            detail = uncounted.why.split(" is ", 1)[-1]
            raise InputError(
                f"the unit axis {given[0]} given for {uncounted.site.name} is {detail}"
            )


def scan(
    model: nn.Module,
    inputs: Iterable[Any] | torch.Tensor,
    *,
    device: torch.device | str | None = None,
    train: bool = False,
    unit_axis: Mapping[str, int] | None = None,
    target: str | None = None,
    batch_axis: int | None = None,
    progress: Callable[[int], None] | None = None,
    thresholds: Thresholds | None = None,
    activations: str = "relu",
    dormant: bool | float = False,
    **overrides: float,
) -> Report:
    """Record ``model`` on every batch of ``inputs`` and return the analysed report.

    ``dormant``: True records dormant statistics; a number also sets the
    dormant threshold tau (``dormant=0.5``).

    A tensor batch is passed as is, a tuple or list as positional arguments, a
    dict as keyword arguments; ``inputs`` itself being a tensor is one batch.
    Ctrl-C stops early and returns what was seen, marked ``partial``.
    """
    where = torch.device(device) if device is not None else model_device(model)
    seen = 0
    partial = False
    # One tensor is one batch, not a sequence of rows to feed one by one.
    iterator = iter([inputs] if isinstance(inputs, torch.Tensor) else inputs)
    with (
        preserved(model, train),
        torch.no_grad(),
        record(
            model,
            unit_axis=unit_axis,
            target=target,
            batch_axis=batch_axis,
            activations=activations,
            dormant=dormant is not False,  # a threshold (0.0 too) records them
        ) as recorder,
    ):
        while True:
            try:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    raise
                except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
                    raise ModelError("reading the next batch", error) from error
                try:
                    call_model(model, to_device(batch, where))
                except (KeyboardInterrupt, DeadcheckError):
                    raise  # deadcheck's own refusal (a batch_axis out of range) keeps its status
                except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
                    raise ModelError(
                        f"forward pass on batch {seen}", error, _hint(model, batch, error)
                    ) from error
            except KeyboardInterrupt:
                partial = True
                break
            seen += 1
            if progress is not None:
                progress(seen)
    if seen == 0 and not partial:
        raise InputError("there were no batches to feed the model (batches() yielded nothing)")
    stats = recorder.stats()
    _check_unit_axis_names(unit_axis or {}, stats)
    if partial:
        stats = replace(stats, partial=True)
    if not isinstance(dormant, bool) and "dormant" not in overrides:
        # dormant=0.5 is the threshold tau (as --dormant 0.5 and report(dormant=0.5) are),
        # not merely "on".
        overrides = {**overrides, "dormant": float(dormant)}
    return analyze(stats, thresholds, **overrides)


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
    unit_axis: Mapping[str, int] | None = None,
    batch_axis: int | None = None,
    thresholds: Thresholds | None = None,
    progress: Callable[[int], None] | None = None,
    activations: str = "relu",
    dormant: bool = False,
) -> TargetScan:
    """What ``deadcheck scan TARGET`` does, in one call: load, feed, record, analyze.

    Every argument is checked before anything is loaded or run. ``plan`` (a
    saved swap plan) is applied before ``weights`` load. Under an initialised
    process group each rank feeds its share of the batches and the counts are
    summed over ranks (start the group first, e.g. with
    :func:`deadcheck.distributed.init_from_env`).
    """
    from deadcheck.distributed import share_of_batches
    from deadcheck.loading import load_plan, load_target, load_weights, parse_device, parse_shape

    thresholds = thresholds or Thresholds()
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
        unit_axis=unit_axis,
        target=target.name,
        batch_axis=batch_axis,
        progress=count,
        thresholds=thresholds,
        activations=activations,
        dormant=dormant,
    )
    return TargetScan(target, report, fed, total, shape)
