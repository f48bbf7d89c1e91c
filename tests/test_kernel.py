"""The compiled counting kernel against brute force and against the pure-torch path, bit for bit."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deadcheck
from deadcheck.recording import counting, kernel
from tests.helpers import close_values, value_reference
from tests.test_properties import activations

needs_kernel = pytest.mark.skipif(
    not kernel.active() and not os.environ.get("CI"),
    reason=f"the compiled kernel is not here: {kernel.status()}",
)


@pytest.fixture
def threads() -> Iterator[Callable[[int], None]]:
    """Set torch's thread count for one test, and put it back."""
    saved = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(saved)


def brute_force(x: torch.Tensor, axis: int, cap: float | None) -> tuple[list, list, list | None]:
    """Per unit: NaN seen, the count of x > 0, the count of x >= cap, from a float64 copy."""
    columns = x.double().movedim(axis, -1).reshape(-1, x.shape[axis])
    nan = torch.isnan(columns).any(0)
    high = None if cap is None else (columns >= cap).sum(0).tolist()
    return nan.tolist(), (columns > 0).sum(0).tolist(), high


def kernel_counts(
    x: torch.Tensor, axis: int, cap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    positive = torch.zeros(x.shape[axis])
    high = None if cap is None else torch.zeros(x.shape[axis])
    return (positive, high) if kernel.count_into(x, axis, positive, high, cap) else None


def torch_counts(
    monkeypatch: pytest.MonkeyPatch, x: torch.Tensor, axis: int, cap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    with monkeypatch.context() as patch:
        patch.setattr(kernel, "_OFF", True)
        return counting.count_units(x, axis, cap=cap)


def assert_same(
    got: tuple[torch.Tensor, torch.Tensor | None], want: tuple[torch.Tensor, torch.Tensor | None]
) -> None:
    assert torch.equal(torch.isnan(got[0]), torch.isnan(want[0]))
    assert torch.equal(got[0].nan_to_num(-1.0), want[0].nan_to_num(-1.0))
    assert (got[1] is None) == (want[1] is None)
    if got[1] is not None and want[1] is not None:
        assert torch.equal(got[1], want[1])


@needs_kernel
def test_the_kernel_is_built_and_on() -> None:
    """Where a C compiler is (CI installs with one), the kernel is built and counts by default."""
    assert kernel.active(), kernel.status()
    assert kernel.status().startswith("compiled kernel")


@needs_kernel
@settings(max_examples=200, deadline=None)
@given(activations(), st.sampled_from([1, 2, 3]))
def test_kernel_equals_brute_force_and_the_torch_path(case, thread_count) -> None:
    """Zeros, -0.0, denormals, ±inf, NaN and 6.0 in every float dtype, on any axis and layout."""
    x, axis, cap, _ = case
    axis %= x.ndim
    saved = torch.get_num_threads()
    torch.set_num_threads(thread_count)
    try:
        got = kernel_counts(x, axis, cap)
    finally:
        torch.set_num_threads(saved)
    assert got is not None  # every dense float CPU tensor is taken
    nan, positive, high = brute_force(x, axis, cap)
    assert torch.isnan(got[0]).tolist() == nan
    assert [p for p, n in zip(got[0].tolist(), nan, strict=True) if not n] == [
        p for p, n in zip(positive, nan, strict=True) if not n
    ]
    assert (got[1].tolist() if got[1] is not None else None) == high
    with pytest.MonkeyPatch.context() as patch:
        assert_same(got, torch_counts(patch, x, axis, cap))


def planted(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """A ReLU-like output with a dead unit, a NaN, denormals, ±inf, -0.0 and values past 6."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).relu() * 5
    flat = x.view(-1)
    picks = torch.randint(0, flat.numel(), (40,), generator=g)
    for i, value in enumerate([-0.0, 1e-45, -1e-45, float("inf"), float("-inf"), 6.0, 7.0, -3.0]):
        flat[picks[i * 5 : (i + 1) * 5]] = value
    return x


LARGE = [  # above the kernel's parallel threshold, each layout it takes
    ("nchw", (4, 24, 31, 29), 1, None),
    ("nchw-relu6", (4, 24, 31, 29), 1, 6.0),
    ("channels-last", (4, 24, 31, 29), 1, "channels_last"),
    ("tokens-features-last", (3, 200, 96), 2, None),
    ("sequence-first-batch-axis-1", (200, 3, 96), 2, 6.0),
    ("units-first", (40, 7, 250), 0, None),
    ("many-units-few-positions", (2, 4096, 3, 3), 1, 6.0),
]


@needs_kernel
@pytest.mark.parametrize(
    ("shape", "axis", "extra"), [c[1:] for c in LARGE], ids=[c[0] for c in LARGE]
)
@pytest.mark.parametrize("thread_count", [1, 2, 3], ids=lambda n: f"{n}-threads")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_kernel_on_large_activations_equals_the_torch_path(
    monkeypatch, threads, shape, axis, extra, thread_count, dtype
) -> None:
    x = planted(shape, seed=len(shape) + shape[axis]).to(dtype)
    x.view(-1)[7] = float("nan")  # one unit turns NaN
    if extra == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    cap = extra if isinstance(extra, float) else None
    threads(thread_count)
    got = kernel_counts(x, axis, cap)
    assert got is not None
    assert int(torch.isnan(got[0]).sum()) == 1
    assert_same(got, torch_counts(monkeypatch, x, axis, cap))
    nan, positive, high = brute_force(x, axis, cap)
    assert [p for p, n in zip(got[0].tolist(), nan, strict=True) if not n] == [
        p for p, n in zip(positive, nan, strict=True) if not n
    ]
    assert (got[1].tolist() if got[1] is not None else None) == high


def value_read(
    x: torch.Tensor, axis: int, clip: float, weight: float, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The kernel's value read of ``x`` (None: declined), into fresh float64 totals."""
    units = x.shape[axis]
    sums = torch.zeros(units, dtype=torch.float64)
    maxes = torch.full((units,), float("-inf"), dtype=torch.float64)
    took = kernel.count_into(
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
    )
    return (sums, maxes) if took else None


SIDES = [  # how the |output| sum follows from what was read
    ("relu-from-input", float("inf"), 0.0, None),
    ("relu6-from-input", 6.0, 0.0, None),
    ("leaky-from-input", float("inf"), 0.25, None),
    ("any-output", float("inf"), 1.0, None),
    ("prelu-per-unit", float("inf"), 0.0, "per-unit"),
]


@needs_kernel
@settings(max_examples=200, deadline=None)
@given(activations(), st.sampled_from(SIDES), st.sampled_from([1, 2, 3]))
def test_value_read_equals_brute_force_and_the_torch_path(case, side, thread_count) -> None:
    """|output| sums and maxima in the counting read: brute force, and pure torch, agree.

    4- and 8-byte floats only: 16-bit ones are declined (the caller reads them
    with pure torch), having changed nothing.
    """
    x, axis, _, _ = case
    axis %= x.ndim
    _, clip, weight, per_unit = side
    weights = torch.linspace(-0.5, 0.75, x.shape[axis]) if per_unit else None
    saved = torch.get_num_threads()
    torch.set_num_threads(thread_count)
    try:
        got = value_read(x, axis, clip, weight, weights)
    finally:
        torch.set_num_threads(saved)
    if x.dtype in (torch.float16, torch.bfloat16):
        assert got is None
        return
    assert got is not None
    want_sums, want_max = value_reference(x, axis, clip, weight, weights)
    assert close_values(got[0].tolist(), want_sums), (got[0], want_sums)
    assert close_values(got[1].tolist(), want_max, rtol=0), (got[1], want_max)
    values = counting._Values(
        torch.zeros(x.shape[axis], dtype=torch.float64),
        clip,
        weight,
        weights,
        maxes=torch.full((x.shape[axis],), float("-inf"), dtype=torch.float64),
    )
    counting._values_with_torch(x, axis, values)
    assert values.sums is not None and values.maxes is not None
    assert close_values(values.sums.tolist(), want_sums), "pure torch"
    assert close_values(values.maxes.tolist(), want_max, rtol=0), "pure torch"


@needs_kernel
@pytest.mark.parametrize(
    ("shape", "axis", "extra"), [c[1:] for c in LARGE], ids=[c[0] for c in LARGE]
)
@pytest.mark.parametrize("side", [s[1:] for s in SIDES], ids=[s[0] for s in SIDES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_read_on_large_activations(threads, shape, axis, extra, side, dtype) -> None:
    """Above the parallel threshold, each layout: the threads' partial sums and maxima merge."""
    x = (planted(shape, seed=len(shape)) - 2.0).to(dtype)  # both signs
    x.view(-1)[7] = float("nan")
    if extra == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    clip, weight, per_unit = side
    weights = torch.linspace(-0.5, 0.75, x.shape[axis]) if per_unit else None
    want_sums, want_max = value_reference(x, axis, clip, weight, weights)
    for thread_count in (1, 3):
        threads(thread_count)
        got = value_read(x, axis, clip, weight, weights)
        assert got is not None
        assert close_values(got[0].tolist(), want_sums), thread_count
        assert close_values(got[1].tolist(), want_max, rtol=0), thread_count
        assert int(torch.isnan(got[1]).sum()) == 1


class Tagged(torch.Tensor):
    """A tensor subclass: its data may not be where data_ptr says."""


DECLINED = [  # what the kernel leaves to pure torch, and why
    ("strided-slice", lambda: torch.randn(4, 6, 10)[:, :, ::2], 1, None),
    ("integer-output", lambda: torch.randint(-3, 3, (4, 5)), 1, None),
    ("cap-not-held-in-fp16", lambda: torch.randn(4, 5).half(), 1, 6.1),
    ("negative-cap", lambda: torch.randn(4, 5), 1, -1.0),
    ("zero-dim", lambda: torch.tensor(1.5), 0, None),
    ("tensor-subclass", lambda: torch.randn(4, 5).as_subclass(Tagged), 1, None),
]


@needs_kernel
@pytest.mark.parametrize(
    ("make", "axis", "cap"), [c[1:] for c in DECLINED], ids=[c[0] for c in DECLINED]
)
def test_the_kernel_declines_what_it_cannot_count_exactly(monkeypatch, make, axis, cap) -> None:
    """Declined tensors change nothing, and count_units still counts them right via torch."""
    x = make()
    units = x.shape[axis] if x.ndim else 1
    positive, high = torch.zeros(units), torch.zeros(units)
    assert not kernel.count_into(x, axis, positive, high, cap)
    assert not positive.any() and not high.any()
    assert_same(counting.count_units(x, axis, cap=cap), torch_counts(monkeypatch, x, axis, cap))


def test_bad_windows_are_refused_before_any_write() -> None:
    if not kernel.active():
        pytest.skip(kernel.status())
    with pytest.raises(ValueError, match="contiguous float32"):
        kernel.count_into(torch.randn(4, 5), 1, torch.zeros(4), None, None)
    with pytest.raises(ValueError, match="contiguous float32"):
        kernel.count_into(torch.randn(4, 5), 1, torch.zeros(5, dtype=torch.float64), None, None)


def test_recording_with_and_without_the_kernel_gives_equal_stats(tmp_path) -> None:
    """Kernel off (DEADCHECK_KERNEL=torch) or not built: the status says so; stats are equal."""
    script = tmp_path / "record.py"
    script.write_text(
        "import json, os, sys, torch\n"
        "if os.environ.get('HIDE_KERNEL'):  # as on a machine where it was not built\n"
        "    sys.modules['deadcheck.recording._countkernel'] = None\n"
        "from torch import nn\n"
        "import deadcheck\n"
        "from deadcheck.recording import kernel\n"
        "torch.manual_seed(0)\n"
        "m = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU6(), nn.Conv2d(16, 8, 1), nn.ReLU())\n"
        "m[0].bias.data[:3] = -100\n"
        "with torch.no_grad(), deadcheck.record(m) as rec:\n"
        "    for _ in range(3):\n"
        "        m(torch.randn(4, 3, 40, 40) * 4)\n"
        "print(json.dumps([kernel.status(), rec.stats().to_dict()]))\n"
    )

    def run(env: dict[str, str]) -> tuple[str, dict]:
        done = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        )
        import json

        status, stats = json.loads(done.stdout)
        return status, stats

    plain_status, plain = run({"DEADCHECK_KERNEL": "torch"})
    missing_status, missing = run({"HIDE_KERNEL": "1"})
    kernel_status, compiled = run({})
    assert plain_status == "pure torch: DEADCHECK_KERNEL=torch"
    assert missing_status.startswith("pure torch: the compiled kernel is not built (")
    assert kernel_status == kernel.status()

    def apart(stats: dict) -> tuple[dict, list]:
        """The stats without the |output| sums (added in another order), and the sums."""
        sums = [site.pop("abs_sum") for site in stats["sites"]]
        return stats, sums

    (compiled, sums), (plain, plain_sums), (missing, missing_sums) = map(
        apart, (compiled, plain, missing)
    )
    assert compiled == plain == missing  # counts, NaN, caps and maxima: exact
    assert plain_sums == missing_sums  # both pure torch
    for a, b in zip(sums, plain_sums, strict=True):
        assert close_values(a, b), (a, b)
    conv = next(site for site in compiled["sites"] if site["kind"] == "ReLU6")
    assert conv["zeros"][:3] == [conv["positions"]] * 3  # the planted dead units


def test_misaligned_data_is_counted_by_pure_torch_exactly() -> None:
    """A float32 tensor one byte off its alignment: typed loads would be undefined behaviour."""
    import numpy as np

    values = torch.tensor([[-1.0, 2.0, 0.5], [3.0, -4.0, 0.0]]).numpy().tobytes()
    raw = bytearray(b"\0" + values)
    x = torch.frombuffer(raw, dtype=torch.float32, offset=1).reshape(2, 3)
    assert x.data_ptr() % 4 != 0
    positive = torch.zeros(3, dtype=torch.float32)
    assert not kernel.count_into(x, 1, positive, None, None)
    assert positive.tolist() == [0.0, 0.0, 0.0]  # declined: nothing written
    counted, _ = counting.count_units(x, 1)
    assert counted.tolist() == [1.0, 1.0, 1.0]
    assert np.frombuffer(bytes(raw[1:]), dtype=np.float32).tolist() == x.flatten().tolist()


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_activations_are_counted_by_the_kernel_and_valued_by_torch(monkeypatch, dtype):
    """The kernel keeps no values of 16-bit floats: it still counts them; torch sums them."""
    calls: list[bool] = []
    real = kernel.count_owned  # what the recorder calls: its own counters need no checks

    def spy(*args, **kwargs):
        took = real(*args, **kwargs)
        calls.append(took)
        return took

    monkeypatch.setattr(kernel, "count_owned", spy)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU()).to(dtype).eval()
    x = torch.randn(16, 6, dtype=dtype)
    report = deadcheck.scan(model, [x])
    assert calls == [False, True]  # values declined, then counts taken
    with torch.no_grad():
        out = model(x).double()
    want_zeros = (out <= 0).sum(0).tolist()
    assert list(report.site("1").figures["dead_units"]) == [
        u for u, z in enumerate(want_zeros) if z == 16
    ]
    assert close_values(report.site("1").mean_abs, out.abs().mean(0).tolist(), rtol=1e-2)
    assert close_values(
        report.site("1").figures["max_input"], model[0](x).double().amax(0).tolist(), rtol=0
    )


@needs_kernel
@pytest.mark.parametrize("threads", [1, 2])
def test_a_zero_prelu_slope_at_minus_inf_sums_to_nan_as_the_output_does(threads) -> None:
    """PReLU with slope 0 maps -inf to NaN (0 * -inf); the |output| sum says so, as torch's.

    Found by the value-read property: the kernel dropped the negative part of a
    unit whose per-unit weight was exactly 0.
    """
    x = torch.tensor([[-math.inf, 1.0, -math.inf], [2.0, -1.0, 3.0]]).T.contiguous()
    weights = torch.tensor([0.0, 0.5])  # units on axis 1: unit 0 has slope 0
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = value_read(x, 1, math.inf, 0.0, weights)
    finally:
        torch.set_num_threads(saved)
    assert got is not None
    output = torch.nn.functional.prelu(x, weights).double().abs().sum(0)
    assert math.isnan(output[0]) and math.isnan(got[0][0])
    assert got[0][1].item() == pytest.approx(output[1].item())


@needs_kernel
@pytest.mark.parametrize("cap", [6.0, 1.5, 2.0**-140], ids=["relu6", "normal", "denormal"])
@pytest.mark.parametrize("inner", [1, 7, 300], ids=["features-last", "short-rows", "long-rows"])
def test_cap_counts_in_the_value_read_match_torch(cap, inner) -> None:
    """The value loops compare with a normal cap as floats; a denormal cap takes the
    integer loops (a float compare would see it as 0 under denormals-are-zero)."""
    specials = [0.0, -0.0, 1e-45, 2.0**-140, 2.0**-139, cap, math.nextafter(cap, 0), 7.0]
    specials += [math.inf, -math.inf, math.nan, -1.0]
    torch.manual_seed(0)
    units = 5
    x = torch.tensor(specials)[torch.randint(len(specials), (4 * units * inner,))]
    x = x.reshape(4, units, inner) if inner > 1 else x.reshape(4, units)
    axis = 1
    positive, saturated = torch.zeros(units), torch.zeros(units)
    sums = torch.zeros(units, dtype=torch.float64)
    maxes = torch.full((units,), -math.inf, dtype=torch.float64)
    assert kernel.count_into(x, axis, positive, saturated, cap, sums=sums, maxes=maxes)
    dims = [d for d in range(x.ndim) if d != axis]
    assert saturated.tolist() == (x >= cap).sum(dims).float().tolist()
    nan = x.isnan().any(dims)
    want = (x > 0).sum(dims).float().masked_fill(nan, math.nan)
    assert close_values(positive.tolist(), want.tolist(), rtol=0)
