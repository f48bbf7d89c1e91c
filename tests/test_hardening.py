"""Models in every form users have: dtypes, memory formats, wrappers, compiled, quantized."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import deadcheck
from deadcheck.cli import main
from tests.helpers import Reference

ROOT = Path(__file__).resolve().parent.parent


def cnn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 4, 1))
    with torch.no_grad():
        model[0].bias[:2] = -100.0
    return model.eval()


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.LeakyReLU(0.1))
    with torch.no_grad():
        model[0].bias[:3] = -100.0
    return model


FORMS = [
    ("float64-mlp", lambda: mlp().double(), lambda: torch.randn(9, 5).double()),
    ("bfloat16-mlp", lambda: mlp().bfloat16(), lambda: torch.randn(9, 5).bfloat16()),
    ("float16-mlp", lambda: mlp().half(), lambda: torch.randn(9, 5).half()),
    (
        "channels-last-cnn",
        lambda: cnn().to(memory_format=torch.channels_last),
        lambda: torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last),
    ),
    ("float16-cnn", lambda: cnn().half(), lambda: torch.randn(2, 3, 8, 8).half()),
]


@pytest.mark.parametrize(("build", "make_input"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_dtypes_and_memory_formats_match_the_reference(build, make_input) -> None:
    model, x = build(), make_input()
    reference = Reference(model)
    try:
        with torch.no_grad(), deadcheck.record(model) as rec:
            model(x)
            model(x * 2)
    finally:
        reference.close()
    for site in rec.stats().sites:
        reference.check(site)
    assert rec.stats().sites[0].dead_units[:2] == (0, 1)  # planted: large negative biases


def test_infinities_count_by_their_sign_and_nan_apart() -> None:
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    inf = float("inf")
    with deadcheck.record(model) as rec:
        model(torch.tensor([[inf, -1.0, 1.0], [1.0, -inf, math.nan]]))
    site = rec.stats().site("1")
    # unit 0: +inf and 1 are active; unit 1: -1 and -inf are off; unit 2 saw a NaN
    assert (site.zeros, site.nan) == ((0, 2, 0), (0, 0, 2))
    findings = rec.report().findings
    assert [(f.code, f.units) for f in findings if f.code == "nan-activations"] == [
        ("nan-activations", (2,))
    ]


@pytest.mark.parametrize(
    "wrap",
    [nn.DataParallel, lambda m: nn.Sequential(m)],
    ids=["DataParallel-on-cpu", "nested"],
)
def test_wrapped_models(wrap) -> None:
    model = wrap(mlp())
    with torch.no_grad(), deadcheck.record(model) as rec:
        model(torch.randn(4, 5))
    expected = ("0.1", "0.3") if isinstance(model, nn.Sequential) else ("1", "3")
    assert rec.stats().names == expected  # DataParallel: the inner model's names


def test_distributed_data_parallel_single_rank(tmp_path: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = nn.parallel.DistributedDataParallel(mlp())
        with deadcheck.record(model) as rec:
            model(torch.randn(4, 5)).sum().backward()
        assert rec.stats().names == ("1", "3")
        assert rec.stats().site("1").dead_units[:3] == (0, 1, 2)
    finally:
        dist.destroy_process_group()


def test_quantized_activations_are_reported_not_crashed() -> None:
    class Quantized(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            q = torch.quantize_per_tensor(x, 0.1, 0, torch.quint8)
            return torch.relu(q).dequantize()

    model = Quantized()
    with deadcheck.record(model) as rec:
        out = model(torch.randn(3, 4))
    assert out.shape == (3, 4)  # the user's forward is never broken
    stats = rec.stats()
    assert stats.sites == ()
    assert any("quantized" in p for p in stats.problems)


def test_torch_compiled_model_is_recorded_eagerly() -> None:
    model = mlp()
    compiled = torch.compile(model, backend="eager")
    with torch.no_grad(), deadcheck.record(compiled) as rec:
        compiled(torch.randn(4, 5))
    assert rec.stats().names == ("1", "3")
    assert rec.stats().site("1").positions == 4
    from torch._dynamo import eval_frame

    assert eval_frame._stance.stance == "default"  # compilation is back on afterwards


def test_interrupted_scan_reports_what_it_saw(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "interrupted.py"
    target.write_text(
        "import torch\nfrom torch import nn\n"
        "model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())\n"
        "def batches():\n"
        "    yield torch.ones(4, 2)\n"
        "    raise KeyboardInterrupt\n"
    )
    result = CliRunner().invoke(main, ["scan", str(target), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["partial"] is True and report["samples"] == 4
    table = CliRunner().invoke(main, ["scan", str(target)])
    assert "(partial: interrupted)" in table.stdout


def test_nan_model_via_cli(tmp_path: Path) -> None:
    target = tmp_path / "nan.py"
    target.write_text(
        "import torch\nfrom torch import nn\n"
        "model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())\n"
        "example_input = torch.tensor([[float('nan'), 1.0]])\n"
    )
    result = CliRunner().invoke(main, ["scan", str(target), "--fail-on", "error"])
    assert result.exit_code == 1
    assert "nan-activations" in result.stdout


def test_numpy_batches_become_tensors() -> None:
    import numpy as np

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    report = deadcheck.scan(model, [np.ones((4, 2), dtype=np.float32)])
    assert report.samples == 4 and report.sites[0].positions == 4
