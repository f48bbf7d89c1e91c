"""Exact counts on hand-set models whose dead units are planted."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from tests.helpers import FUNCTIONS, Functional, conv, linear

# One input feature x in {-2, -1, 1, 2, 3}; units compute x, -x and -1 (planted dead).
X5 = torch.tensor([[-2.0], [-1.0], [1.0], [2.0], [3.0]])
LIN3 = ([[1.0], [-1.0], [0.0]], [0.0, 0.0, -1.0])
# Twelve values -5..6 as one image channel: 6 of them are <= 0, 7 are >= 0.
IMG = torch.arange(-5.0, 7.0).reshape(2, 1, 2, 3)


@dataclass
class Case:
    id: str
    model: nn.Module
    inputs: list[Any]
    expected: dict[str, dict[str, Any]]
    unit_axis: dict[str, int] = field(default_factory=dict)


class Twice(nn.Module):
    """A shared ReLU called on 2, 3 and 4 channels in one forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.a = conv(nn.Conv2d, [1.0, -1.0], [0.0, -9.0])
        self.b = conv(nn.Conv2d, [1.0, -1.0, 0.0], [0.0, 0.0, -9.0])
        self.c = conv(nn.Conv2d, [0.0, 0.0, 0.0, 1.0], [-9.0, -9.0, -9.0, 9.0])
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.act(self.a(x)), self.act(self.b(x)), self.act(self.c(x))], 1)


class FunctionalMLP(nn.Module):
    """F.relu, torch.relu and Tensor.relu_ in the model's own forward code."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = linear(*LIN3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(x))
        h = torch.relu(h - 1)
        return (h - 1).relu_()


def mlp(act: nn.Module) -> nn.Module:
    return nn.Sequential(linear(*LIN3), act)


CASES = [
    Case(
        "mlp-relu",
        mlp(nn.ReLU()),
        [X5],
        {"1": dict(kind="ReLU", units=3, positions=5, zeros=(2, 3, 5), dead=(2,))},
    ),
    Case(
        "mlp-relu-inplace-two-batches",
        mlp(nn.ReLU(inplace=True)),
        [X5, X5[:2]],
        {"1": dict(kind="ReLU", units=3, positions=7, zeros=(4, 3, 7), dead=(2,))},
    ),
    Case(
        "cnn2d-batchnorm-inplace",
        nn.Sequential(
            conv(nn.Conv2d, [1.0, -1.0, 0.0, 2.0], [0.0, 0.0, -5.0, 0.0]),
            nn.BatchNorm2d(4).eval(),
            nn.ReLU(inplace=True),
        ),
        [IMG],
        {
            "2": dict(
                kind="ReLU", units=4, unit_axis=1, positions=12, zeros=(6, 7, 12, 6), dead=(2,)
            )
        },
    ),
    Case(
        "conv1d",
        nn.Sequential(conv(nn.Conv1d, [1.0, -1.0, 0.0], [0.0, 0.0, -1.0]), nn.ReLU()),
        [IMG.reshape(2, 1, 6)],
        {"1": dict(units=3, unit_axis=1, positions=12, zeros=(6, 7, 12), dead=(2,))},
    ),
    Case(
        "tokens-last-axis",
        mlp(nn.ReLU()),
        [X5.reshape(1, 5, 1).repeat(2, 1, 1)],
        {"1": dict(units=3, unit_axis=2, positions=10, zeros=(4, 6, 10), dead=(2,))},
    ),
    Case(
        "shared-module-three-channel-counts",
        Twice(),
        [IMG],
        {
            "act#0": dict(units=2, positions=12, zeros=(6, 12), dead=(1,)),
            "act#1": dict(units=3, positions=12, zeros=(6, 7, 12), dead=(2,)),
            "act#2": dict(units=4, positions=12, zeros=(12, 12, 12, 0), dead=(0, 1, 2)),
        },
    ),
    Case(
        "functional-calls-in-forward",
        FunctionalMLP(),
        [X5],
        {
            # relu(x), relu(-x), relu(-1) ; then relu(h - 1) ; then relu(h - 2)
            ":relu#0": dict(units=3, positions=5, zeros=(2, 3, 5), dead=(2,)),
            ":relu#1": dict(units=3, positions=5, zeros=(3, 4, 5), dead=(2,)),
            ":relu#2": dict(units=3, positions=5, zeros=(4, 5, 5), dead=(1, 2)),
        },
    ),
    Case(
        "relu6-saturation",
        nn.Sequential(linear([[1.0], [0.0]], [0.0, 7.0]), nn.ReLU6()),
        [torch.tensor([[-1.0], [0.0], [3.0], [6.0], [7.0]])],
        {"1": dict(kind="ReLU6", units=2, positions=5, zeros=(2, 0), dead=(), saturated=(2, 5))},
    ),
    Case(
        "prelu-per-channel-slopes",
        nn.Sequential(linear(*LIN3), nn.PReLU(3)),
        [X5],
        # the unit that stayed negative passes a gradient: linear on the data, not dead
        {"1": dict(kind="PReLU", units=3, zeros=(2, 3, 5), dead=(), slope=(0.25, 0.25, 0.25))},
    ),
    Case(
        "leaky-shared-slope",
        mlp(nn.LeakyReLU(0.01)),
        [X5],
        {"1": dict(kind="LeakyReLU", zeros=(2, 3, 5), slope=0.01)},
    ),
    Case(
        "rrelu-midpoint-slope",
        mlp(nn.RReLU(0.1, 0.3)).eval(),
        [X5],
        {"1": dict(kind="RReLU", zeros=(2, 3, 5), slope=0.2)},
    ),
    Case(
        "nan-is-not-zero",
        mlp(nn.ReLU()),
        [torch.tensor([[-2.0], [math.nan], [1.0]])],
        # every unit saw the NaN in this call: its 3 positions count as non-finite
        {"1": dict(positions=3, zeros=(0, 0, 0), nan=(3, 3, 3), dead=())},
    ),
    Case(
        "unit-axis-override",
        nn.Sequential(conv(nn.Conv1d, [1.0, -1.0, 0.0], [0.0, 0.0, -1.0]), nn.ReLU()),
        [IMG.reshape(2, 1, 6)],
        {"1": dict(units=6, unit_axis=2, positions=6)},
        unit_axis={"1": -1},
    ),
]

CASES += [
    Case(
        f"functional-{name}",
        nn.Sequential(linear(*LIN3), Functional(fn)),
        [X5],
        {
            "1:" + name.split(".")[-1].split("-")[0].rstrip("_"): dict(
                units=3,
                positions=5,
                zeros=(2, 3, 5),
                # dead only where the negative side passes no gradient
                dead=() if any(k in name for k in ("leaky", "prelu", "rrelu")) else (2,),
            )
        },
    )
    for name, fn in FUNCTIONS.items()
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_planted_counts(case: Case) -> None:
    with torch.no_grad(), deadcheck.record(case.model, unit_axis=case.unit_axis) as rec:
        for batch in case.inputs:
            case.model(batch)
    stats = rec.stats()
    assert list(stats.names) == list(case.expected)
    for name, want in case.expected.items():
        site = stats.site(name)
        got = {
            "kind": site.kind,
            "units": site.units,
            "unit_axis": site.unit_axis,
            "positions": site.positions,
            "zeros": site.zeros,
            "dead": site.dead_units,
            "nan": site.nan,
            "saturated": site.saturated,
            "slope": site.slope,
        }
        for key, value in want.items():
            if key == "slope" and value is not None:
                assert got[key] == pytest.approx(value), (name, key)
            else:
                assert got[key] == value, (name, key)


def test_samples_count_batch_rows() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        model(X5)
        model(X5[:2])
    assert rec.stats().samples == 7


def test_zero_fraction_and_dead_fraction() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        model(X5)
    site = rec.stats().site("1")
    assert site.zero_fraction == (0.4, 0.6, 1.0)
    assert site.dead_fraction == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "context",
    [torch.no_grad, torch.inference_mode, torch.enable_grad],
    ids=["no_grad", "inference_mode", "autograd"],
)
def test_counts_under_every_grad_mode(context: Any) -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        with context():
            model(X5)
        model(X5)  # and once more in the default mode: counters must accept both
    assert rec.stats().site("1").zeros == (4, 6, 10)


def test_training_backward_still_works_and_counts() -> None:
    model = mlp(nn.PReLU(3))
    with deadcheck.record(model) as rec:
        model(X5).sum().backward()
    assert model[1].weight.grad is not None
    assert rec.stats().site("1").zeros == (2, 3, 5)


def test_counters_stay_on_device_and_do_not_grow_with_batches() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        model(X5)
        before = [
            (c.totals["positive"].data_ptr(), c.totals["positive"].numel())
            for _, c in rec._named_counters()
        ]
        for _ in range(50):
            model(X5)
        after = [
            (c.totals["positive"].data_ptr(), c.totals["positive"].numel())
            for _, c in rec._named_counters()
        ]
    assert before == after  # updated in place: no new tensors per batch
    assert rec.stats().site("1").positions == 5 * 51


def test_names_are_stable_between_runs() -> None:
    def names() -> tuple[str, ...]:
        model = Twice()
        with deadcheck.record(model) as rec:
            model(IMG)
            model(IMG)
        return rec.stats().names

    assert names() == names() == ("act#0", "act#1", "act#2")
    model = Twice()
    with deadcheck.record(model) as rec:
        model(IMG)
        assert rec.site_names() == ["act#0", "act#1", "act#2"]  # live, before any stats()


def test_calls_outside_the_model_are_not_counted() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        F.relu(model(X5))  # the user's own code, outside the model
        torch.relu(X5)
    assert rec.stats().names == ("1",)


def test_two_recorders_and_nesting_see_the_same_counts() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as outer:
        model(X5)
        with deadcheck.record(model) as inner:
            model(X5)
    assert outer.stats().site("1").zeros == (4, 6, 10)
    assert inner.stats().site("1").zeros == (2, 3, 5)


def test_recorders_on_two_models_one_inside_the_other() -> None:
    inner_model = mlp(nn.ReLU())
    outer_model = nn.Sequential(inner_model, nn.ReLU())
    with deadcheck.record(outer_model) as a, deadcheck.record(inner_model) as b:
        outer_model(X5)
    assert a.stats().names == ("0.1", "1")
    assert b.stats().names == ("1",)
    assert b.stats().site("1").zeros == a.stats().site("0.1").zeros


def test_reset_zeroes_counts_and_keeps_sites() -> None:
    model = mlp(nn.ReLU())
    with deadcheck.record(model) as rec:
        model(X5)
        rec.reset()
        model(X5[:2])
    site = rec.stats().site("1")
    assert (site.positions, site.zeros) == (2, (2, 0, 2))


def test_model_without_activations_has_no_sites() -> None:
    model = nn.Linear(1, 2)
    with deadcheck.record(model) as rec:
        model(X5)
    assert rec.stats().sites == ()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_host_sync_inside_a_recorded_cuda_forward() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True)).cuda()
    x = torch.randn(4, 3, 16, 16, device="cuda")
    with deadcheck.record(model) as rec:
        model(x)  # first call creates the counters
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                model(x)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert rec.stats().site("2").positions == 4 * 14 * 14 * 4


def test_windows_settle_exactly_and_keep_nan_to_its_window(monkeypatch) -> None:
    """Tiny float32 windows force settling and splitting; counts stay exact."""
    import deadcheck.recording.counting

    monkeypatch.setattr(deadcheck.recording.counting, "WINDOW", 8)
    model = mlp(nn.ReLU())
    x = X5.repeat(5, 1)  # 25 positions per unit in one call: split into several windows
    with deadcheck.record(model) as rec:
        model(x)
        model(X5)
        rec._named_counters()[0][1].settle()
        model(torch.tensor([[math.nan]]))  # a window of its own after the settle above
    site = rec.stats().site("1")
    assert site.positions == 31
    assert site.zeros == (12, 18, 30)
    assert site.nan == (1, 1, 1)


def test_functional_relu_inside_torch_transformer_layers() -> None:
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=12, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).train()
    x = torch.randn(3, 5, 8)
    reference: dict[int, torch.Tensor] = {}

    def keep(i: int):
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            reference[i] = (out <= 0).reshape(-1, 12).sum(0)

        return hook

    for i, block in enumerate(model.layers):
        block.linear1.register_forward_hook(keep(i))
    with deadcheck.record(model) as rec:
        model(x)
    stats = rec.stats()
    assert stats.names == ("layers.0:relu", "layers.1:relu")
    for i, name in enumerate(stats.names):
        site = stats.site(name)
        assert (site.units, site.unit_axis, site.positions) == (12, 2, 15)
        assert list(site.zeros) == reference[i].tolist()


CHUNKED = [
    ("cnn-nchw", lambda: nn.Sequential(nn.Conv2d(2, 5, 3), nn.ReLU()), (3, 2, 9, 7), False),
    (
        "cnn-channels-last",
        lambda: nn.Sequential(nn.Conv2d(2, 5, 3), nn.LeakyReLU(0.1)),
        (3, 2, 9, 7),
        True,
    ),
    ("tokens", lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU6()), (2, 37, 4), False),
    (
        "single-sample",
        lambda: nn.Sequential(nn.Conv2d(2, 5, 1), nn.PReLU(5)),
        (1, 2, 11, 13),
        False,
    ),
]


@pytest.mark.parametrize(
    ("build", "shape", "channels_last"), [c[1:] for c in CHUNKED], ids=[c[0] for c in CHUNKED]
)
def test_chunked_cpu_counting_matches_the_reference(
    monkeypatch, counting_path, build, shape, channels_last
) -> None:
    """Tiny chunks force the cache-sized sign buffer path, in training mode with autograd."""
    import deadcheck.recording.counting
    from tests.helpers import Reference

    monkeypatch.setattr(deadcheck.recording.counting, "CHUNK", 16)
    torch.manual_seed(0)
    model = build()
    x = torch.randn(shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    reference = Reference(model)
    try:
        with deadcheck.record(model) as rec:
            model(x).sum().backward()
            model(x * 30)  # large enough for ReLU6 to saturate somewhere
    finally:
        reference.close()
    for site in rec.stats().sites:
        reference.check(site)
        assert site.saturated is None or 0 < sum(site.saturated) < site.positions * site.units


def test_models_recorded_in_two_threads_at_once_count_exactly(monkeypatch, counting_path) -> None:
    """Each thread has its own chunk buffer: concurrent recordings never mix counts."""
    import threading

    import deadcheck.recording.counting
    from tests.helpers import Reference

    monkeypatch.setattr(deadcheck.recording.counting, "CHUNK", 64)
    results: dict[int, Any] = {}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 1), nn.ReLU6())
            reference = Reference(model)
            try:
                with torch.no_grad(), deadcheck.record(model) as rec:
                    for _ in range(20):
                        model(torch.randn(4, 3, 9, 9) * 10)
            finally:
                reference.close()
            results[seed] = (reference, rec.stats())
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for reference, stats in results.values():
        assert len(stats.sites) == 2
        for site in stats.sites:
            reference.check(site)


@pytest.mark.parametrize(
    "modes",
    [("inference", "train", "no_grad"), ("train", "inference", "train")],
    ids=["inference-first", "train-first"],
)
def test_grad_modes_in_any_order_count_exactly(monkeypatch, counting_path, modes) -> None:
    """The chunk buffer and its views are made once, under whatever mode comes first."""
    import deadcheck.recording.counting
    from tests.helpers import Reference

    monkeypatch.setattr(deadcheck.recording.counting, "CHUNK", 256)
    monkeypatch.setattr(deadcheck.recording.counting, "_local", __import__("threading").local())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.ReLU6())
    x = torch.randn(4, 3, 12, 12) * 5
    reference = Reference(model)
    try:
        with deadcheck.record(model) as rec:
            for mode in modes:
                if mode == "inference":
                    with torch.inference_mode():
                        model(x)
                elif mode == "no_grad":
                    with torch.no_grad():
                        model(x)
                else:
                    model(x).sum().backward()
    finally:
        reference.close()
    stats = rec.stats()
    assert stats.problems == ()
    for site in stats.sites:
        assert site.calls == 3
        reference.check(site)


def test_record_warns_once_about_a_model_in_training_mode() -> None:
    import warnings

    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.ReLU())
    x = torch.randn(4, 3)
    with (
        pytest.warns(deadcheck.TrainingModeWarning, match="call model.eval"),
        deadcheck.record(model),
    ):
        model(x)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with deadcheck.record(model) as rec:
            model(x)
            model(x)  # once per recorder
        with deadcheck.record(model.eval()):
            model(x)
        with deadcheck.record(model.train(), training_only=True):
            model(x)
        deadcheck.scan(model, [x], train=True)  # the mode asked for
        rec = deadcheck.record(model)
        rec.warn_training = False
        with rec:
            model(x)
    assert [type(w.message) for w in seen].count(deadcheck.TrainingModeWarning) == 1


def test_scan_shows_progress_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    batches = [torch.randn(2, 3) for _ in range(3)]
    seen: list[int] = []
    quiet = deadcheck.scan(model, batches, progress=seen.append)
    assert seen == [1, 2, 3]
    shown = deadcheck.scan(model, batches, progress=True)
    assert shown == quiet
    err = capsys.readouterr().err
    assert "deadcheck" in err and "/3" in err and "batch" in err  # tqdm: stderr is no terminal
