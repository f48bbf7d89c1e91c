"""Property-based: on random small architectures the counters equal the brute-force reference,
and a scan never ends in a traceback."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import deadcheck
from tests.helpers import ACTIVATION_MODULES, FUNCTIONS, Functional, Reference

ACTIVATIONS = sorted(ACTIVATION_MODULES) + [f"fn:{name}" for name in sorted(FUNCTIONS)]


class SharedTwice(nn.Module):
    """One activation module applied at two places in a forward pass."""

    def __init__(self, first: nn.Module, second: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.first, self.second, self.act = first, second, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.second(self.act(self.first(x))))


def make_act(name: str, units: int, per_channel_ok: bool) -> nn.Module:
    if name.startswith("fn:"):
        return Functional(FUNCTIONS[name[3:]])
    if name == "PReLU" and per_channel_ok:
        return nn.PReLU(units)
    return ACTIVATION_MODULES[name]()


@st.composite
def models(draw: st.DrawFn) -> tuple[nn.Module, torch.Tensor]:
    family = draw(st.sampled_from(["mlp", "tokens", "conv1d", "conv2d"]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    width = draw(st.integers(1, 5))
    batch = draw(st.integers(1, 4))
    torch.manual_seed(draw(st.integers(0, 10_000)))
    if family == "conv2d":
        x = torch.randn(batch, width, draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    elif family == "conv1d":
        x = torch.randn(batch, width, draw(st.integers(1, 6)))
    elif family == "tokens":
        x = torch.randn(batch, draw(st.integers(1, 4)), width)
    else:
        x = torch.randn(batch, width)

    def layer(n_in: int, n_out: int) -> list[nn.Module]:
        if family == "conv2d":
            out: list[nn.Module] = [
                nn.Conv2d(n_in, n_out, draw(st.sampled_from([1, 3])), padding="same")
            ]
            if draw(st.booleans()):
                out.append(nn.BatchNorm2d(n_out))
        elif family == "conv1d":
            out = [nn.Conv1d(n_in, n_out, 1)]
        else:
            out = [nn.Linear(n_in, n_out)]
        with torch.no_grad():
            bias = out[0].bias
            for unit in draw(st.sets(st.integers(0, n_out - 1), max_size=n_out)):
                bias[unit] = -100.0  # planted dead unit
        return out

    channel_first = family in ("conv1d", "conv2d") or family == "mlp"
    layers: list[nn.Module] = []
    n_in = width
    for _ in range(draw(st.integers(1, 3))):
        n_out = draw(st.integers(1, 5))
        if draw(st.booleans()):
            act = make_act(draw(st.sampled_from(ACTIVATIONS)), n_out, channel_first)
            first = nn.Sequential(*layer(n_in, n_out))
            second = nn.Sequential(*layer(n_out, n_out))
            layers.append(SharedTwice(first, second, act))
        else:
            layers += [
                *layer(n_in, n_out),
                make_act(draw(st.sampled_from(ACTIVATIONS)), n_out, channel_first),
            ]
        n_in = n_out
    model = nn.Sequential(*layers).to(dtype).eval()
    return model, x.to(dtype)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_counts_equal_brute_force(case: tuple[nn.Module, torch.Tensor]) -> None:
    model, x = case
    reference = Reference(model)
    try:
        with torch.no_grad(), deadcheck.record(model) as rec:
            model(x)
            model(-x)
    finally:
        reference.close()
    stats = rec.stats()
    by_module: dict[str, list] = {}
    for site in stats.sites:
        by_module.setdefault(site.module, []).append(site)
    assert sorted(by_module) == sorted(reference.inputs)
    for module, sites in by_module.items():
        calls = reference.inputs[module]
        if len(sites) == 1:
            reference.check(sites[0])
        else:  # a shared module: site #i saw calls i, i + k, ... of the module
            k = len(sites)
            assert [s.name for s in sites] == [
                f"{sites[0].name.split('#')[0]}#{i}" for i in range(k)
            ]
            for i, site in enumerate(sites):
                one = Reference.__new__(Reference)
                one.inputs = {module: calls[i::k]}
                one.check(site)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(models())
def test_scan_and_render_never_raise(case: tuple[nn.Module, torch.Tensor]) -> None:
    model, x = case
    report = deadcheck.scan(model, [x, x * 2])
    for fmt in ("table", "json", "markdown"):
        assert deadcheck.render(report, fmt)
    assert report.samples == 2 * x.shape[0]


SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 1e-40, 6.0, 7.5, float("inf"), float("-inf"), float("nan")]


@st.composite
def activations(draw: st.DrawFn) -> tuple[torch.Tensor, int, float | None, int]:
    """A tensor with zeros, denormals, infinities and NaN at random places, and how to count it."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16]))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * 4
    picks = torch.randint(0, len(SPECIAL) + 4, shape, generator=generator)
    for i, value in enumerate(SPECIAL):
        x[picks == i] = value
    x = x.to(dtype)
    if x.ndim >= 2 and draw(st.booleans()):
        x = x.transpose(0, -1)  # not contiguous
    axis = draw(st.integers(-x.ndim, x.ndim - 1))
    cap = draw(st.sampled_from([None, 6.0]))
    chunk = draw(st.sampled_from([1, 4, 16, 1 << 20]))
    return x, axis, cap, chunk


@settings(max_examples=150, deadline=None)
@given(activations(), st.sampled_from(["chunk-buffer", "device-path"]))
def test_count_units_equals_brute_force(
    case: tuple[torch.Tensor, int, float | None, int], path: str
) -> None:
    """Exact per-unit counts of x > 0 and x >= cap, NaN marking exactly the units that saw one.

    Both run the pure-torch path (tests/test_kernel.py checks the compiled
    kernel); "device-path" runs, on the CPU, the code that CUDA tensors take.
    """
    import deadcheck.recording.counting as counting
    from deadcheck.recording import kernel

    x, axis, cap, chunk = case
    saved = counting.CHUNK, counting._in_scratch, kernel._OFF
    counting.CHUNK, kernel._OFF = chunk, True
    if path == "device-path":
        counting._in_scratch = lambda x: False
    try:
        positive, high = counting.count_units(x, axis, cap=cap)
    finally:
        counting.CHUNK, counting._in_scratch, kernel._OFF = saved
    columns = x.double().movedim(axis, -1).reshape(-1, x.shape[axis])
    nan = torch.isnan(columns).any(0)
    assert torch.equal(torch.isnan(positive), nan)
    assert positive[~nan].tolist() == (columns > 0).sum(0)[~nan].double().tolist()
    if cap is None:
        assert high is None
    else:
        assert high is not None
        assert high.tolist() == (columns >= cap).sum(0).double().tolist()
