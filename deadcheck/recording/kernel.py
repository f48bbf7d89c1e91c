"""The compiled counting kernel: each CPU activation counted in one read, on torch's threads.

The pure-torch count (:func:`deadcheck.recording.counting.count_units`) needs an
indicator, ``ceil(clamp(x, 0, 1))``, written and summed chunk by chunk: about
three times the cost of one read of the activation. The kernel in
``_countkernel.c`` reads each value once, as a signed integer of its width,
and counts x > 0, NaN and x >= cap per unit exactly (the reasoning is in the C
file). It runs on torch's own OpenMP thread pool, so it adds about what one
per-unit sum adds (docs/performance.md has the figures).

It is optional. It is built when deadcheck is installed, where a C compiler
is found; where it is not, or for tensors it does not take (CUDA, non-dense
views, integer outputs), deadcheck counts with pure torch, and the counts are
the same, bit for bit (a property test compares the two on zeros, -0.0,
denormals, infinities and NaN). ``DEADCHECK_KERNEL=torch`` turns it off.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import os
from collections.abc import Iterator
from types import ModuleType

import torch

__all__ = [
    "ENV",
    "active",
    "bit_format",
    "cap_bits_for",
    "count_into",
    "count_owned",
    "dense_layout",
    "disabled",
    "status",
    "values_fit",
    "weights_fit",
    "window_fits",
]

#: The environment variable that, set to ``torch``, makes deadcheck count with pure torch.
ENV = "DEADCHECK_KERNEL"


#: The environment variable naming a kernel built elsewhere (a sanitizer build, in tests).
PATH_ENV = "DEADCHECK_KERNEL_PATH"


def _load() -> tuple[ModuleType | None, str]:
    built = os.environ.get(PATH_ENV)
    if built:
        spec = importlib.util.spec_from_file_location("deadcheck.recording._countkernel", built)
        if spec is None or spec.loader is None:
            return None, f"not loadable from {built}"
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module, ""
    try:
        return importlib.import_module("deadcheck.recording._countkernel"), ""
    except ImportError as error:  # not built: no compiler at install time
        return None, f"not built ({error})"


_native, _why = _load()

_OFF = os.environ.get(ENV, "").strip().lower() == "torch"

#: Per float dtype: its width in bytes, the integer dtype of that width, and +inf's bits.
_FORMATS: dict[torch.dtype, tuple[int, torch.dtype]] = {
    torch.float16: (2, torch.int16),
    torch.bfloat16: (2, torch.int16),
    torch.float32: (4, torch.int32),
    torch.float64: (8, torch.int64),
}


def _bits(value: float, dtype: torch.dtype) -> int:
    """The bits of ``value`` in ``dtype``, read as a signed integer."""
    return int(torch.tensor(value, dtype=dtype).view(_FORMATS[dtype][1]).item())


_INF_BITS = {dtype: _bits(math.inf, dtype) for dtype in _FORMATS}
_cap_bits: dict[tuple[float, torch.dtype], int | None] = {}


def bit_format(dtype: torch.dtype) -> tuple[torch.dtype, int] | None:
    """The signed integer dtype a float dtype is read as, and +inf's bits in it (None: no float)."""
    fmt = _FORMATS.get(dtype)
    return None if fmt is None else (fmt[1], _INF_BITS[dtype])


def cap_bits_for(cap: float, dtype: torch.dtype) -> int | None:
    """``cap``'s bits in ``dtype``, or None where integer order would not be float order.

    That is a cap that is not positive and finite, or one that ``dtype`` does
    not hold exactly (torch would compare against a rounded cap).
    """
    key = (cap, dtype)
    if key not in _cap_bits:
        exact = torch.tensor(cap, dtype=dtype).item() == cap
        usable = exact and 0 < cap < math.inf
        _cap_bits[key] = _bits(cap, dtype) if usable else None
    return _cap_bits[key]


def active() -> bool:
    """Whether CPU activations are counted by the compiled kernel."""
    return _native is not None and not _OFF


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Count with pure torch inside the block (process-wide: every thread's recorders).

    For comparing the two paths, as the benchmark does; ``DEADCHECK_KERNEL=torch``
    does the same for a whole process.
    """
    global _OFF
    saved, _OFF = _OFF, True
    try:
        yield
    finally:
        _OFF = saved


def status() -> str:
    """One line for reports and benchmarks: which counting path runs, and why."""
    if _native is None:
        return f"pure torch: the compiled kernel is {_why}"
    if _OFF:
        return f"pure torch: {ENV}=torch"
    threads = "on torch's OpenMP threads" if _native.OPENMP else "on one thread (no OpenMP)"
    return f"compiled kernel, {threads}"


def dense_layout(x: torch.Tensor, axis: int) -> tuple[int, int, int] | None:
    """``x`` in memory order as (outer, units, inner), or None when it is not dense."""
    shape = x.shape
    if x.is_contiguous():
        order: list[int] = list(range(x.ndim))
    else:
        strides = x.stride()
        order = sorted(range(x.ndim), key=lambda d: strides[d], reverse=True)
        if not x.permute(order).is_contiguous():
            return None
    at = order.index(axis)
    return (
        math.prod(shape[d] for d in order[:at]),
        shape[axis],
        math.prod(shape[d] for d in order[at + 1 :]),
    )


#: What the kernel needs to know of a tensor geometry, worked out once per geometry:
#: (width, outer, units, inner, cap bits, inf bits), or None where the kernel declines it.
_Plan = tuple[int, int, int, int, int, int]
_plans: dict[tuple[object, ...], _Plan | None] = {}


def _plan(x: torch.Tensor, axis: int, cap: float | None) -> _Plan | None:
    fmt = _FORMATS.get(x.dtype)
    if fmt is None or x.device.type != "cpu" or x.ndim == 0:
        return None
    cap_bits = 0
    if cap is not None:
        found = cap_bits_for(cap, x.dtype)
        if found is None:
            return None
        cap_bits = found
    layout = dense_layout(x, axis)
    if layout is None:
        return None
    outer, units, inner = layout
    if outer * inner >= 1 << 31:
        return None
    return fmt[0], outer, units, inner, cap_bits, _INF_BITS[x.dtype]


def _fits(
    t: torch.Tensor | None,
    dtype: torch.dtype,
    sizes: tuple[int, ...],
    device: torch.device | str,
) -> bool:
    """Whether ``t`` is absent, or contiguous ``dtype`` on ``device`` with a size in ``sizes``.

    Checked on every call, so cheaply: a device given by name (``"cpu"``) is
    compared by type, without building a ``torch.device``.
    """
    if t is None:
        return True
    on = t.device.type == device if isinstance(device, str) else t.device == device
    return t.dtype == dtype and on and t.is_contiguous() and t.numel() in sizes


def window_fits(
    window: torch.Tensor | None, units: int, device: torch.device | str = "cpu"
) -> bool:
    """Whether a window is one the kernels add into: ``units`` contiguous float32 on ``device``."""
    return _fits(window, torch.float32, (units,), device)


def values_fit(values: torch.Tensor | None, units: int, device: torch.device | str) -> bool:
    """Whether a value total is one the kernels write: ``units`` contiguous float64."""
    return _fits(values, torch.float64, (units,), device)


def weights_fit(weights: torch.Tensor | None, units: int, device: torch.device | str) -> bool:
    """Whether negative-side weights (PReLU's slopes) can be read: float32, 1 or ``units``."""
    return _fits(weights, torch.float32, (1, units), device)


def _geometry(x: torch.Tensor, axis: int, cap: float | None) -> _Plan | None:
    """The plan for ``x`` if the kernel is on and takes tensors of its geometry, else None."""
    if _native is None or _OFF or type(x) is not torch.Tensor or x.is_neg():
        return None
    key = (x.shape, x.stride(), x.dtype, x.device, axis, cap)
    if key in _plans:
        return _plans[key]
    if len(_plans) >= 4096:  # shapes that keep changing (sequence lengths) stay bounded
        _plans.clear()
    plan = _plans[key] = _plan(x, axis, cap)
    return plan


def count_into(
    x: torch.Tensor,
    axis: int,
    positive: torch.Tensor,
    saturated: torch.Tensor | None,
    cap: float | None,
    *,
    sums: torch.Tensor | None = None,
    clip: float = math.inf,
    neg_weight: float = 0.0,
    neg_weights: torch.Tensor | None = None,
    maxes: torch.Tensor | None = None,
) -> bool:
    """Add per-unit counts of ``x`` along ``axis`` into float32 windows, if the kernel takes ``x``.

    ``positive`` gets the positions with x > 0 (NaN for a unit that saw a
    NaN) and ``saturated`` those with x >= ``cap``: the same as adding
    :func:`deadcheck.recording.counting.count_units`. ``axis`` is in ``range(x.ndim)``.

    In the same read, where asked: ``sums`` (float64 per unit) gets the sum of
    ``min(x, clip)`` over x > 0 plus ``w`` times the sum of ``|x|`` over
    x < 0, ``w`` being ``|neg_weights|`` per unit (or one shared) where given,
    else ``neg_weight``: a unit's sum of |output| computed from its input or
    output; ``maxes`` (float64 per unit) becomes the larger of itself and each
    unit's largest value. Both are NaN for a unit that saw a NaN.

    Returns False, having changed nothing, for a tensor the kernel does not
    take (these value statistics are for 4- and 8-byte floats); the caller
    then counts with pure torch. Each unit may get fewer than 2**24 positions
    per call (float32 windows are exact below that). Raises ValueError for
    windows or totals of the wrong size, dtype or layout.
    """
    plan = _geometry(x, axis, cap)
    if plan is None:
        return False
    units = plan[2]
    if not (window_fits(positive, units) and window_fits(saturated, units)):
        raise ValueError(f"windows must be {units} contiguous float32 CPU values")
    if (sums is not None or maxes is not None) and not (
        values_fit(sums, units, "cpu")
        and values_fit(maxes, units, "cpu")
        and weights_fit(neg_weights, units, "cpu")
    ):
        raise ValueError(f"sums and maxima must be {units} contiguous float64 CPU values")
    return _run(plan, x, positive, saturated, cap, sums, clip, neg_weight, neg_weights, maxes)


def count_owned(
    x: torch.Tensor,
    axis: int,
    positive: torch.Tensor,
    saturated: torch.Tensor | None,
    cap: float | None,
    sums: torch.Tensor | None = None,
    clip: float = math.inf,
    neg_weight: float = 0.0,
    neg_weights: torch.Tensor | None = None,
    maxes: torch.Tensor | None = None,
) -> bool:
    """:func:`count_into` for targets their owner made to fit (a recorder's own counters).

    The same read, without checking the windows and totals on every call:
    the caller guarantees what :func:`window_fits`, :func:`values_fit` and
    :func:`weights_fit` check, for the units of ``x`` along ``axis``. Small
    layers are called often enough that those checks showed in their cost.
    """
    plan = _geometry(x, axis, cap)
    if plan is None:
        return False
    return _run(plan, x, positive, saturated, cap, sums, clip, neg_weight, neg_weights, maxes)


def _run(
    plan: _Plan,
    x: torch.Tensor,
    positive: torch.Tensor,
    saturated: torch.Tensor | None,
    cap: float | None,
    sums: torch.Tensor | None,
    clip: float,
    neg_weight: float,
    neg_weights: torch.Tensor | None,
    maxes: torch.Tensor | None,
) -> bool:
    """One native call on checked targets; False where the kernel declines this call."""
    native = _native
    if native is None or (cap is not None and saturated is None):
        return False
    width, outer, units, inner, cap_bits, inf_bits = plan
    extras = sums is not None or maxes is not None
    if extras and width == 2:
        return False
    if outer == 0 or units == 0 or inner == 0:
        return True  # no positions: nothing to add
    try:
        address = x.data_ptr()
    except RuntimeError:  # a tensor with no storage of its own (functorch, fake tensors)
        return False
    if address == 0 or address % width:
        # Misaligned data (torch.frombuffer(..., offset=1)): the kernel's typed loads
        # would be undefined behaviour, so pure torch counts it.
        return False
    args: list[int | float] = [
        address,
        width,
        outer,
        units,
        inner,
        positive.data_ptr(),
        saturated.data_ptr() if saturated is not None else 0,
        cap_bits,
        inf_bits,
        cap is not None,
        torch.get_num_threads(),
    ]
    if extras:  # the six optional arguments of the value read
        args += [
            sums.data_ptr() if sums is not None else 0,
            float(clip),
            float(neg_weight),
            neg_weights.data_ptr() if neg_weights is not None else 0,
            1 if neg_weights is not None and neg_weights.numel() > 1 else 0,
            maxes.data_ptr() if maxes is not None else 0,
        ]
    native.count(*args)
    return True
