"""A one-read counting kernel for GPU activations, in Triton.

On CUDA, the pure-torch count (:func:`deadcheck.recording.counting.count_units`)
launches several kernels per activation (an indicator, its sum, and more for
the cap and NaN); for a small-batch convnet the launches alone can cost more
than the activation. This kernel reads each value once and adds, per unit,
the positions with x > 0 (NaN for a unit that saw a NaN) and with x >= cap
into the same float32 windows, and, where asked, the unit's sum of |output|
and largest value into float64 totals (the dormant sums and margins). It
compares the floats' bits as integers, as the CPU kernel does (exact for
denormals whatever the device's flush-to-zero mode), and adds counts with
float32 atomic adds of whole numbers below 2**24: exact, so the order of the
adds cannot change a count, and the counts equal the pure-torch path's bit
for bit (the float64 sums of |output| may differ in their last bits).
Nothing waits for the device.

The activation is read in memory order as (outer, units, inner), as the CPU
kernel reads it; each program takes a tile of units by positions. A cap that
is not positive, or that the activation's dtype does not hold exactly, is
left to pure torch, as on the CPU.

It is optional: used for CUDA tensors where Triton is installed, else the
pure-torch path runs. ``DEADCHECK_KERNEL=torch`` turns it off too. Its
exactness is tested on the CPU under Triton's interpreter
(``TRITON_INTERPRET=1``), which ``count_into(..., interpret=True)`` allows;
``benchmarks/gpu.py`` measures it on a GPU.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from typing import Any

import torch

from deadcheck.recording.kernel import (
    bit_format,
    cap_bits_for,
    dense_layout,
    values_fit,
    weights_fit,
    window_fits,
)

__all__ = ["available", "count_into", "disabled"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_MAX_ELEMENTS = 1 << 31


@functools.cache
def _kernel() -> Any:
    """The jitted kernel, made once (None where Triton is missing)."""
    try:
        import triton
        import triton.language as tl
    except ImportError:
        return None

    @triton.jit
    def count_kernel(
        x_ptr,
        values_ptr,
        positive_ptr,
        saturated_ptr,
        sums_ptr,
        maxes_ptr,
        weights_ptr,
        positions,
        units,
        inner,
        cap_bits,
        inf_bits,
        abs_mask,
        clip,
        weight,
        HAS_CAP: tl.constexpr,
        HAS_SUMS: tl.constexpr,
        HAS_NEG: tl.constexpr,
        PER_UNIT: tl.constexpr,
        HAS_WEIGHTS: tl.constexpr,
        HAS_MAX: tl.constexpr,
        BLOCK_P: tl.constexpr,
        BLOCK_U: tl.constexpr,
    ):
        p = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P).to(tl.int64)
        u = tl.program_id(1).to(tl.int64) * BLOCK_U + tl.arange(0, BLOCK_U).to(tl.int64)
        outer = p // inner
        within = p % inner
        offsets = outer[None, :] * (units * inner) + u[:, None] * inner + within[None, :]
        mask = (u[:, None] < units) & (p[None, :] < positions)
        # The float's bits as a signed integer: > 0 exactly for x > 0 (denormals too,
        # whatever the device's flush-to-zero mode), NaN above +inf's bits.
        bits = tl.load(x_ptr + offsets, mask=mask, other=0).to(tl.int32)
        nan = mask & ((bits & abs_mask) > inf_bits)
        counted = tl.sum(tl.where(mask & (bits > 0) & ~nan, 1.0, 0.0), axis=1)
        seen_nan = tl.max(tl.where(nan, 1, 0), axis=1)
        counted = tl.where(seen_nan > 0, float("nan"), counted)
        keep = u < units
        tl.atomic_add(positive_ptr + u, counted, mask=keep)
        if HAS_CAP:
            high = tl.sum(tl.where(mask & (bits >= cap_bits) & ~nan, 1.0, 0.0), axis=1)
            tl.atomic_add(saturated_ptr + u, high, mask=keep)
        if HAS_SUMS or HAS_MAX:
            v = tl.load(values_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            if HAS_SUMS:
                # per unit: min(x, clip) over x > 0, plus |w| |x| over x < 0: the |output|
                total = tl.sum(tl.where(mask & (bits > 0) & ~nan, tl.minimum(v, clip), 0.0), 1)
                if HAS_NEG:
                    below = tl.sum(tl.where(mask & (bits < 0) & ~nan, -v, 0.0), axis=1)
                    if HAS_WEIGHTS:
                        if PER_UNIT:
                            w = tl.abs(tl.load(weights_ptr + u, mask=keep, other=0.0))
                        else:
                            w = tl.abs(tl.load(weights_ptr + u * 0, mask=keep, other=0.0))
                    else:
                        w = weight
                    total = total + w * below
                total = tl.where(seen_nan > 0, float("nan"), total)
                tl.atomic_add(sums_ptr + u, total.to(tl.float64), mask=keep)
            if HAS_MAX:
                top = tl.max(tl.where(mask & ~nan, v, float("-inf")), axis=1)
                tl.atomic_max(maxes_ptr + u, top.to(tl.float64), mask=keep)
                # a NaN unit's maximum is NaN (as torch's amax): a positive NaN, which
                # every later atomic maximum keeps
                tl.store(
                    maxes_ptr + u,
                    tl.full((BLOCK_U,), float("nan"), tl.float64),
                    mask=keep & (seen_nan > 0),
                )

    return count_kernel


_off = False


def available() -> bool:
    """Whether GPU activations can be counted by the Triton kernel here."""
    if _off or os.environ.get("DEADCHECK_KERNEL", "").strip().lower() == "torch":
        return False
    return _kernel() is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Count GPU activations with pure torch inside the block (the benchmark's comparison)."""
    global _off
    saved, _off = _off, True
    try:
        yield
    finally:
        _off = saved


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
    interpret: bool = False,
) -> bool:
    """Add per-unit counts of ``x`` along ``axis`` into float32 windows, if the kernel takes ``x``.

    The same contract as :func:`deadcheck.recording.kernel.count_into`, value
    statistics included (their float64 sums are added atomically, so their
    last bits may depend on the order of the adds; counts never do): False,
    having changed nothing, for a tensor the kernel declines (the caller then
    counts with pure torch). ``interpret`` lets CPU tensors through, for
    Triton's interpreter (``TRITON_INTERPRET=1``) in tests.
    """
    if not available() or type(x) is not torch.Tensor or x.dtype not in _DTYPES:
        return False
    if x.device.type != "cuda" and not interpret:
        return False
    if (
        x.ndim == 0
        or x.is_neg()
        or x.numel() >= _MAX_ELEMENTS
        or (cap is not None and saturated is None)
    ):
        return False
    layout = dense_layout(x, axis)
    if layout is None:
        return False
    outer, units, inner = layout
    if not (window_fits(positive, units, x.device) and window_fits(saturated, units, x.device)):
        return False
    if not (
        values_fit(sums, units, x.device)
        and values_fit(maxes, units, x.device)
        and weights_fit(neg_weights, units, x.device)
    ):
        return False
    positions = outer * inner
    if positions == 0 or units == 0:
        return True
    fmt = bit_format(x.dtype)
    if fmt is None:
        return False
    int_dtype, inf_bits = fmt
    cap_bits = 0
    if cap is not None:
        found = cap_bits_for(cap, x.dtype)  # a positive cap the dtype holds exactly
        if found is None:
            return False
        cap_bits = found
    if inner == 1:  # units contiguous (a Linear's features): tiles wide in units
        block_u = min(64, 1 << max(0, (units - 1).bit_length()))
        block_p = 32
    else:  # positions contiguous per unit (channels): tiles long in positions
        block_u = 1
        block_p = min(1024, 1 << max(4, (positions - 1).bit_length()))
    grid = (-(-positions // block_p), -(-units // block_u))
    has_neg = sums is not None and (neg_weights is not None or neg_weight != 0)
    _kernel()[grid](
        x.view(int_dtype),
        x,
        positive,
        saturated if saturated is not None else positive,
        sums if sums is not None else positive,
        maxes if maxes is not None else positive,
        neg_weights if neg_weights is not None else positive,
        positions,
        units,
        inner,
        cap_bits,
        inf_bits,
        (1 << (8 * x.element_size() - 1)) - 1,
        float(clip),
        float(neg_weight),
        HAS_CAP=cap is not None,
        HAS_SUMS=sums is not None,
        HAS_NEG=has_neg,
        PER_UNIT=neg_weights is not None and neg_weights.numel() > 1,
        HAS_WEIGHTS=neg_weights is not None,
        HAS_MAX=maxes is not None,
        BLOCK_P=block_p,
        BLOCK_U=block_u,
    )
    return True
