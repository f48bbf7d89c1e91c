"""Run by tests/test_gpu_kernel.py in a process of its own, under Triton's interpreter.

The Triton counting kernel, on CPU tensors through ``TRITON_INTERPRET=1``,
against the pure-torch path and a brute-force count, on the hypothesis
property the CPU kernel has: any rank, unit axis, float dtype, memory order,
cap, and zeros, -0.0, denormals, infinities and NaN; and its value read
(|output| sums and maxima) the same way.
"""

from __future__ import annotations

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.helpers, run as a script

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deadcheck.recording import gpu_kernel, kernel
from deadcheck.recording.counting import _indicator_sums, _per_unit, _Values, _values_with_torch
from tests.helpers import close_values, value_reference

SPECIAL = [0.0, -0.0, 1e-40, -1e-40, float("inf"), float("-inf"), float("nan"), 6.0, 5.999]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@st.composite
def cases(draw):
    rank = draw(st.integers(2, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    axis = draw(st.integers(0, rank - 1))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**16))
    cap = draw(st.sampled_from([None, 6.0, 0.5, 0.1, 0.0]))
    specials = draw(st.lists(st.sampled_from(SPECIAL), max_size=8))
    channels_last = rank == 4 and draw(st.booleans())
    return shape, axis, dtype, seed, cap, specials, channels_last


def activation(case) -> torch.Tensor:
    """The case's tensor: its seed's values, its special values planted, its memory order."""
    shape, _, dtype, seed, _, specials, channels_last = case
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    flat = x.view(-1)
    for i, value in enumerate(specials):
        flat[(i * 7919) % flat.numel()] = value
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def brute_force(x: torch.Tensor, axis: int, cap: float | None) -> tuple[list, list | None]:
    moved = x.movedim(axis, 0).reshape(x.shape[axis], -1).float()
    capped = None if cap is None else float(torch.tensor(cap, dtype=x.dtype))
    positive, high = [], []
    for row in moved:
        positive.append(float("nan") if row.isnan().any() else float((row > 0).sum()))
        if capped is not None:
            high.append(float((row >= capped).sum()))
    return positive, (high if cap is not None else None)


def same(a: list, b: torch.Tensor) -> bool:
    return [("nan" if v != v else v) for v in a] == [("nan" if v != v else v) for v in b.tolist()]


@settings(max_examples=int(os.environ.get("EXAMPLES", "100")), deadline=None, derandomize=True)
@given(cases())
def check(case) -> None:
    shape, axis, dtype, _, cap, _, _ = case
    x = activation(case)
    units = shape[axis]
    positive = torch.zeros(units)
    saturated = torch.zeros(units) if cap is not None else None
    took = gpu_kernel.count_into(x, axis, positive, saturated, cap, interpret=True)
    # A cap that is not positive, or that the dtype does not hold exactly, is left to
    # pure torch, as on the CPU (integer order is float order only for positive values).
    assert took == (cap is None or kernel.cap_bits_for(cap, dtype) is not None), case
    if not took:
        assert not positive.any() and (saturated is None or not saturated.any())
        return
    flat_x, _, dims = _per_unit(x, axis)
    torch_positive, torch_high = _indicator_sums(flat_x, dims, cap)
    expected, expected_high = brute_force(x, axis, cap)
    assert same(expected, positive), (case, expected, positive)
    assert same(expected, torch_positive), (case, "pure torch", expected, torch_positive)
    if cap is not None:
        assert saturated is not None and torch_high is not None
        assert same(expected_high, saturated), (case, expected_high, saturated)
        assert torch.equal(saturated, torch_high)


@settings(max_examples=int(os.environ.get("EXAMPLES", "100")), deadline=None, derandomize=True)
@given(
    cases(),
    st.sampled_from(
        [
            (float("inf"), 0.0, False),
            (6.0, 0.0, False),
            (float("inf"), 0.25, False),
            (float("inf"), 0.0, True),
        ]
    ),
)
def check_values(case, side) -> None:
    """The value read (|output| sums, maxima) against brute force and pure torch."""
    shape, axis, _, _, _, _, _ = case
    clip, weight, per_unit = side
    x = activation(case)
    units = shape[axis]
    weights = torch.linspace(-0.5, 0.75, units) if per_unit else None
    sums = torch.zeros(units, dtype=torch.float64)
    maxes = torch.full((units,), float("-inf"), dtype=torch.float64)
    took = gpu_kernel.count_into(
        x,
        axis,
        torch.zeros(units),
        None,
        None,
        sums=sums,
        clip=clip,
        neg_weight=weight,
        neg_weights=weights,
        maxes=maxes,
        interpret=True,
    )
    assert took, case
    want_sums, want_max = value_reference(x, axis, clip, weight, weights)
    assert close_values(sums.tolist(), want_sums, rtol=1e-4), (case, sums, want_sums)
    assert close_values(maxes.tolist(), want_max, rtol=0), (case, maxes, want_max)
    values = _Values(
        torch.zeros(units, dtype=torch.float64),
        clip,
        weight,
        weights,
        maxes=torch.full((units,), float("-inf"), dtype=torch.float64),
    )
    _values_with_torch(x, axis, values)
    assert values.sums is not None and values.maxes is not None
    assert close_values(values.sums.tolist(), want_sums, rtol=1e-2), "pure torch"
    assert close_values(values.maxes.tolist(), want_max, rtol=0), "pure torch"


def declines() -> None:
    """What the kernel leaves to pure torch: CPU tensors outside the interpreter, odd dtypes."""
    x = torch.randn(4, 3)
    window = torch.zeros(3)
    assert not gpu_kernel.count_into(x, 1, window, None, None)  # a CPU tensor, no interpret
    assert not gpu_kernel.count_into(x.double(), 1, window, None, None, interpret=True)
    assert not gpu_kernel.count_into(x[:, ::2], 1, torch.zeros(2), None, None, interpret=True)
    assert not gpu_kernel.count_into(x, 1, torch.zeros(2), None, None, interpret=True)
    assert torch.equal(window, torch.zeros(3))  # nothing changed


if __name__ == "__main__":
    if not gpu_kernel.available():
        print("triton is not installed")
        sys.exit(2)
    declines()
    check()
    check_values()
    print("ok")
