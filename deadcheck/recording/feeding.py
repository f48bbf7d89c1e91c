"""Feed batches through a recorded model: the one loop every scan, swap and series runs.

The model is run without gradients and, unless ``train=True``, in eval mode;
the training flag of every submodule and every buffer are restored
afterwards. Errors raised by the user's model or batches come out as
:class:`~deadcheck.core.errors.ModelError`, so a caller can tell them from
deadcheck's own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deadcheck.analysis.judging import analyze
from deadcheck.core.checks import is_number
from deadcheck.core.errors import DeadcheckError, InputError, ModelError, Stage
from deadcheck.core.options import RecordingKwargs, RecordingOptions, recording_options
from deadcheck.core.progress import progress_for
from deadcheck.core.thresholds import Thresholds
from deadcheck.recording.recorder import record
from deadcheck.results.report import Report
from deadcheck.results.stats import Stats

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["call_model", "model_device", "preserved", "scan", "to_device"]


def to_device(batch: Any, device: torch.device | str) -> Any:
    """``batch`` with every tensor in it moved to ``device`` (tuples, lists, dicts kept).

    NumPy arrays become tensors on the way.
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if type(batch).__module__ == "numpy" and hasattr(batch, "__array__"):
        return torch.as_tensor(batch).to(device)
    if isinstance(batch, tuple):
        return tuple(to_device(b, device) for b in batch)
    if isinstance(batch, list):
        return [to_device(b, device) for b in batch]
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def call_model(model: nn.Module, batch: Any) -> Any:
    """Feed one batch: a tensor as is, a tuple or list as positional, a dict as keyword args."""
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    if isinstance(batch, dict):
        return model(**batch)
    return model(batch)


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


@contextmanager
def _grads_kept(model: nn.Module) -> Iterator[None]:
    """The parameters' ``.grad`` as they were before, whatever backward does inside."""
    saved = [(p, p.grad) for p in model.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad


def _hint(model: nn.Module, batch: Any, error: BaseException) -> str | None:
    """A likely cause for a forward pass that rejected its batch, or None."""
    if isinstance(error, TypeError) and isinstance(batch, (tuple, list)) and len(batch) > 1:
        return (
            f"the batch is a {type(batch).__name__} of {len(batch)}, which deadcheck passes as "
            "that many positional arguments; if it is (inputs, labels) from a DataLoader, "
            "yield only the inputs: `for x, _ in loader: yield x`"
        )
    text = str(error)
    embeds = any(isinstance(m, nn.Embedding) for m in model.modules())
    if (
        isinstance(batch, torch.Tensor)
        and batch.is_floating_point()
        and embeds
        and ("indices" in text or "Long" in text)
    ):
        return (
            f"the batch is {str(batch.dtype).replace('torch.', '')} but the model embeds token "
            "ids: feed integer inputs (the command line: --input-dtype long [--vocab N], or "
            "--data with real tokens)"
        )
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
        if uncounted.given_axis is not None:
            raise InputError(
                f"the unit axis {uncounted.given_axis} given for {uncounted.site.name} is "
                f"{uncounted.axis_problem}"
            )


def scan(
    model: nn.Module,
    inputs: Iterable[Any] | torch.Tensor,
    *,
    device: torch.device | str | None = None,
    train: bool = False,
    target: str | None = None,
    progress: Callable[[int], None] | bool | None = None,
    thresholds: Thresholds | None = None,
    dormant: float | None = None,
    loss: Callable[[Any, Any], torch.Tensor] | None = None,
    options: RecordingOptions | None = None,
    **kwargs: Unpack[RecordingKwargs],
) -> Report:
    """Record ``model`` on every batch of ``inputs`` and return the analysed report.

    Recording options are :func:`~deadcheck.recording.recorder.record`'s
    (``options=`` or their keywords). ``dormant`` is the dormant threshold
    tau, as everywhere (``report(dormant=)``, ``--dormant``, the callbacks);
    giving it records the dormant sums too (``dormant_sums=True`` records
    them at the default tau).

    A tensor batch is passed as is, a tuple or list as positional arguments, a
    dict as keyword arguments; ``inputs`` itself being a tensor is one batch.
    Ctrl-C stops early and returns what was seen, marked ``partial``.
    ``progress`` is called with the batches done; ``progress=True`` shows them
    (a line on a terminal, a tqdm bar in a notebook).

    ``loss(output, batch)`` runs backward after each batch, for the gradient
    statistics (``gradients=True``, which needs it); the parameters'
    ``.grad`` are put back as they were, and no optimizer steps.
    """
    chosen = recording_options(options, kwargs)
    if chosen.gradients and loss is None:
        raise InputError(
            "gradients: the gradient statistics need a backward pass: pass loss=(output, batch) "
            "-> scalar (the command line: define loss(output, batch) in the target file)",
            option="gradients",
        )
    if dormant is not None:
        if isinstance(dormant, bool) or not is_number(dormant) or not 0 <= dormant < 1:
            raise InputError(
                f"dormant is the dormant threshold tau, a number in [0, 1), got {dormant!r} "
                "(dormant_sums=True records the sums at the default tau)",
                option="dormant",
            )
        chosen = replace(chosen, dormant_sums=True)  # a threshold (0.0 too) records the sums
    bar = None
    if progress is True:  # a line on a terminal, a tqdm bar in a notebook
        total = (
            len(inputs)
            if isinstance(inputs, Sized) and not isinstance(inputs, torch.Tensor)
            else None
        )
        bar = progress_for(1 if isinstance(inputs, torch.Tensor) else total)
        progress = bar
    elif progress is False:
        progress = None
    try:
        return _scan(
            model, inputs, device, train, target, progress, thresholds, dormant, loss, chosen
        )
    finally:
        if bar is not None:
            bar.close()


def _scan(
    model: nn.Module,
    inputs: Iterable[Any] | torch.Tensor,
    device: torch.device | str | None,
    train: bool,
    target: str | None,
    progress: Callable[[int], None] | None,
    thresholds: Thresholds | None,
    dormant: float | None,
    loss: Callable[[Any, Any], torch.Tensor] | None,
    chosen: RecordingOptions,
) -> Report:
    where = torch.device(device) if device is not None else model_device(model)
    seen = 0
    partial = False
    # One tensor is one batch, not a sequence of rows to feed one by one.
    iterator = iter([inputs] if isinstance(inputs, torch.Tensor) else inputs)
    with (
        preserved(model, train),
        _grads_kept(model) if loss is not None else contextlib.nullcontext(),
        torch.enable_grad() if loss is not None else torch.no_grad(),
        record(model, chosen, target=target) as recorder,
    ):
        recorder.warn_training = False  # the mode is the one asked for (train=)
        while True:
            try:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except KeyboardInterrupt:
                    raise
                except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
                    raise ModelError("reading the next batch", error, stage=Stage.INPUTS) from error
                try:
                    fed = to_device(batch, where)
                    output = call_model(model, fed)
                    if loss is not None:
                        loss(output, fed).backward()
                except (KeyboardInterrupt, DeadcheckError):
                    raise  # deadcheck's own refusal (a batch_axis out of range) keeps its status
                except BaseException as error:  # sys.exit() too: exit 3, not the code it asked
                    raise ModelError(
                        f"forward pass on batch {seen}",
                        error,
                        _hint(model, batch, error),
                        stage=Stage.FORWARD,
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
    _check_unit_axis_names(chosen.unit_axis, stats)
    if partial:
        stats = replace(stats, partial=True)
    if dormant is not None:
        thresholds = replace(thresholds or Thresholds(), dormant=float(dormant))
    return analyze(stats, thresholds)
