"""prune(): dead units removed exactly, on planted models, real architectures and the CLI.

Each case is built twice: with units planted dead (a bias of -100 before the
ReLU kills a unit on every input) and at the widths pruning them should
leave. The pruned model must have exactly the smaller model's state-dict
shapes, and its outputs on the judged batches must equal the original's to
float rounding (float64 here: within 1e-12).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

import deadcheck
from deadcheck.cli import main
from deadcheck.core.errors import SwapError
from deadcheck.repair.pruning import PrunePlan, apply_prune_plan, count_parameters, prune

ROOT = Path(__file__).resolve().parent.parent


def _kill(bias: torch.Tensor, units: list[int]) -> None:
    with torch.no_grad():
        bias[units] = -100.0


class MLP(nn.Module):
    def __init__(self, a: int = 6, b: int = 5) -> None:
        super().__init__()
        self.fc1, self.act1 = nn.Linear(3, a), nn.ReLU()
        self.fc2, self.act2 = nn.Linear(a, b), nn.ReLU6()
        self.head = nn.Linear(b, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act2(self.fc2(self.act1(self.fc1(x)))))


class ConvPoolFlatten(nn.Module):
    """Conv -> BN -> ReLU -> MaxPool -> Conv(padded) -> ReLU -> Dropout -> flatten -> Linear."""

    def __init__(self, a: int = 6, b: int = 5) -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = (
            nn.Conv2d(2, a, 3, padding=1),
            nn.BatchNorm2d(a),
            nn.ReLU(),
        )
        self.pool = nn.MaxPool2d(2)
        self.conv2, self.act2 = nn.Conv2d(a, b, 3, padding=1), nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(b * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act1(self.bn1(self.conv1(x))))
        x = self.drop(self.act2(self.conv2(x)))
        return self.head(torch.flatten(x, 1))


class Functional(nn.Module):
    """F.relu, F.max_pool2d, zero padding, a spatial mean and x.view(n, -1) in forward code."""

    def __init__(self, a: int = 6, b: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, a, 3)
        self.conv2 = nn.Conv2d(a, b, 1)
        self.head = nn.Linear(b, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(F.max_pool2d(F.relu(self.conv1(x)), 2), (1, 1, 1, 1))
        x = F.relu(self.conv2(x)).mean((2, 3))
        return self.head(x.view(x.size(0), -1))


class NormAfterLinear(nn.Module):
    """Linear -> ReLU -> BatchNorm1d -> Linear: the zero becomes a constant, folded in the bias."""

    def __init__(self, a: int = 6) -> None:
        super().__init__()
        self.fc, self.act, self.bn = nn.Linear(3, a), nn.ReLU(), nn.BatchNorm1d(a)
        self.head = nn.Linear(a, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.act(self.fc(x))))


class NormAfterConv(nn.Module):
    """Conv -> ReLU -> BatchNorm2d -> Conv without padding: the constant folds exactly."""

    def __init__(self, a: int = 6) -> None:
        super().__init__()
        self.conv, self.act, self.bn = nn.Conv2d(2, a, 3), nn.ReLU(), nn.BatchNorm2d(a)
        self.out = nn.Conv2d(a, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.bn(self.act(self.conv(x))))


class Flagged(nn.Module):
    """Conv -> BN -> ReLU blocks by a helper method, behind a defaulted flag (fx: concrete)."""

    def __init__(self, a: int = 6) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv1d(2, a, 3, padding=1), nn.BatchNorm1d(a)
        self.head = nn.Linear(a, 3)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))

    def forward(self, x: torch.Tensor, embed: bool = False) -> torch.Tensor:
        pooled = F.adaptive_avg_pool1d(self.block(x), 1).flatten(1)
        return pooled if embed else self.head(pooled)


def _stats(model: nn.Module) -> None:
    """Give every BatchNorm running statistics and an affine map that are not the identity.

    Positive scales and shifts, so no unit but the planted ones dies.
    """
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(
                    0.1 * torch.randn(m.num_features, generator=g, dtype=torch.float64)
                )
                m.running_var.copy_(
                    torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5
                )
                m.weight.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g, dtype=torch.float64))


@dataclass(frozen=True)
class Case:
    build: Callable[..., nn.Module]
    plant: Callable[[nn.Module], None]
    small: dict[str, int]
    shape: tuple[int, ...]
    removed: dict[str, tuple[int, ...]]


def _plant_mlp(m: Any) -> None:
    with torch.no_grad():
        m.fc1.bias.fill_(1.0)  # every other unit fires on these inputs
        m.fc2.bias.fill_(1.0)
    _kill(m.fc1.bias, [1, 4])
    _kill(m.fc2.bias, [0])


def _plant_conv(m: Any) -> None:
    _kill(m.bn1.bias, [0, 2, 5])
    _kill(m.conv2.bias, [3])


def _plant_functional(m: Any) -> None:
    _kill(m.conv1.bias, [2])
    _kill(m.conv2.bias, [1, 3])


CASES = {
    "mlp-relu-relu6": Case(
        MLP, _plant_mlp, {"a": 4, "b": 4}, (8, 3), {"act1": (1, 4), "act2": (0,)}
    ),
    "bn-maxpool-padded-conv-dropout-flatten": Case(
        ConvPoolFlatten,
        _plant_conv,
        {"a": 3, "b": 4},
        (4, 2, 8, 8),
        {"act1": (0, 2, 5), "act2": (3,)},
    ),
    "functional-pool-pad-mean-view": Case(
        Functional,
        _plant_functional,
        {"a": 5, "b": 2},
        (4, 2, 9, 9),
        {":relu#0": (2,), ":relu#1": (1, 3)},
    ),
    "bn-after-linear-folded": Case(
        NormAfterLinear, lambda m: _kill(m.fc.bias, [0, 3]), {"a": 4}, (8, 3), {"act": (0, 3)}
    ),
    "bn-after-unpadded-conv-folded": Case(
        NormAfterConv,
        lambda m: _kill(m.conv.bias, [1, 2, 4]),
        {"a": 3},
        (3, 2, 9, 9),
        {"act": (1, 2, 4)},
    ),
    "defaulted-flag-helper-method": Case(
        Flagged, lambda m: _kill(m.bn.bias, [0, 5]), {"a": 4}, (4, 2, 7), {":relu": (0, 5)}
    ),
}


def _setup(case: Case) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = case.build().double().eval()
    _stats(model)
    case.plant(model)
    return model, torch.randn(case.shape, dtype=torch.float64)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dead_units_are_removed_exactly(name: str) -> None:
    case = CASES[name]
    model, x = _setup(case)
    before = copy.deepcopy(model.state_dict())
    report = deadcheck.scan(model, [x, x * 2])
    result = prune(model, report)
    assert result.pruned == case.removed and result.skipped == {} and result.kept == {}
    small = case.build(**case.small).double()
    expected = {k: v.shape for k, v in small.state_dict().items()}
    assert {k: v.shape for k, v in result.model.state_dict().items()} == expected
    assert result.parameters_after == count_parameters(small) < result.parameters_before
    with torch.no_grad():
        for batch in (x, x * 2):
            assert (result.model(batch) - model(batch)).abs().max() <= 1e-12
    # The user's model is untouched, and a recording of the pruned one finds no dead unit.
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(not s.dead_units for s in deadcheck.scan(result.model, [x, x * 2]).sites)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_plan_rebuilds_the_pruned_layers_in_a_fresh_model(name: str) -> None:
    case = CASES[name]
    model, x = _setup(case)
    result = prune(model, deadcheck.scan(model, [x]))
    plan = PrunePlan.from_dict(json.loads(result.plan.to_json()))
    fresh = apply_prune_plan(case.build().double().eval(), plan)
    fresh.load_state_dict(result.model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh(x), result.model(x))
    replayed = prune(case.build().double().eval(), plan=plan)
    assert replayed.parameters_after == result.parameters_after


def test_the_flag_keeps_its_meaning_after_a_prune() -> None:
    model, x = _setup(CASES["defaulted-flag-helper-method"])
    pruned = prune(model, deadcheck.scan(model, [x])).model
    with torch.no_grad():
        kept = model(x, embed=True)[:, [1, 2, 3, 4]]  # units 0 and 5 were dead
        assert (pruned(x, embed=True) - kept).abs().max() < 1e-12
        assert pruned(x, embed=True).shape == (4, 4)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act, self.head = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.fc(x)) + x)


class Normed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act, self.norm = nn.Linear(4, 4), nn.ReLU(), nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.fc(x)))


class Concatenated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.act, self.head = nn.Linear(4, 4), nn.ReLU(), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.act(self.fc(x)), x], 1))


class NormThenPadded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act, self.bn = nn.Conv2d(2, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)
        self.out = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.bn(self.act(self.conv(x))))


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act, self.out = nn.Conv2d(2, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.conv(x)))


SKIPS = {
    "residual-add": (Residual, (4, 4), "a residual add"),
    "layernorm": (Normed, (4, 4), "LayerNorm norm, which mixes or reshapes units"),
    "concatenation": (Concatenated, (4, 4), "cat, which mixes or reshapes units"),
    "bn-then-padded-conv": (NormThenPadded, (2, 2, 6, 6), "padded convolution out sees"),
    "grouped-consumer": (Grouped, (2, 2, 3, 3), "grouped convolution"),
}


@pytest.mark.parametrize("name", sorted(SKIPS))
def test_a_site_whose_units_mix_is_left_whole_with_the_reason(name: str) -> None:
    build, shape, reason = SKIPS[name]
    torch.manual_seed(0)
    model = build().eval()
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    _kill(first.bias, [1])
    x = torch.randn(shape)
    result = prune(model, deadcheck.scan(model, [x]))
    assert result.pruned == {} and result.plan.modules == ()
    assert reason in result.skipped["act"], result.skipped
    assert result.parameters_after == result.parameters_before


def test_a_dead_layer_keeps_one_unit_and_says_so() -> None:
    torch.manual_seed(0)
    model = MLP().double().eval()
    _kill(model.fc1.bias, list(range(6)))
    result = prune(model, deadcheck.scan(model, [torch.randn(4, 3, dtype=torch.float64)]))
    assert result.pruned["act1"] == (1, 2, 3, 4, 5)
    assert result.kept == {"act1": "every unit is dead; unit 0 is kept so the layer keeps a width"}


def test_torchvision_resnet18_with_planted_dead_channels() -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    with torch.no_grad():
        model.layer1[0].bn1.bias[:32] = -100.0  # half of layer1.0's first conv: dead
        model.layer3[1].bn1.bias[::4] = -100.0
    x = torch.randn(2, 3, 64, 64)
    report = deadcheck.scan(model, [x])
    result = prune(model, report)
    assert set(range(32)) <= set(result.pruned["layer1.0.relu#0"])
    assert set(range(0, 256, 4)) <= set(result.pruned["layer3.1.relu#0"])
    for site in result.pruned:
        assert result.pruned[site] == report.site(site).dead_units
    assert all("residual add" in why for site, why in result.skipped.items() if "relu#1" in site)
    # Each removed unit of a BasicBlock takes conv1's filter, bn1's channel and conv2's column.
    block = {64: 64 * 9 + 2 + 64 * 9, 128: 128 * 9 + 2 + 128 * 9, 256: 256 * 9 + 2 + 256 * 9}
    assert result.parameters_before - result.parameters_after >= 32 * block[64] + 64 * block[256]
    with torch.no_grad():
        a, b = model(x), result.model(x)
    assert (a - b).abs().max() <= 1e-4 * max(1.0, float(a.abs().max()))


def test_the_bundled_dying_mlp_prunes_by_its_dead_share() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dying_mlp", ROOT / "examples" / "dying_mlp.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model = example.model()
    batches = list(example.batches())
    report = deadcheck.scan(model, batches)
    result = prune(model, report)
    dead = {s.name: s.dead_units for s in report.sites if s.dead_units}
    assert dead and {s: u for s, u in result.pruned.items()} == {
        s: u[1:] if len(u) == report.site(s).units else u for s, u in dead.items()
    }
    with torch.no_grad():
        for batch in batches:
            a, b = model(batch), result.model(batch)
            assert (a - b).abs().max() <= 1e-4 * max(1.0, float(a.abs().max()))
    assert result.parameters_after < result.parameters_before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema="other"), "not a prune plan"),
        (lambda d: d["modules"][0].update(type="LSTM"), "is not prunable"),
        (lambda d: d["modules"][0].update(keep_out=[3, 1]), "not sorted"),
        (lambda d: d["modules"][0].update(keep_out=[99]), "indices below"),
        (lambda d: d["modules"][0].update(keep_out=[]), "keeps no output"),
        (lambda d: d["modules"][0].update(module="__class__.x"), "not a module path"),
    ],
    ids=["schema", "type", "unsorted", "out-of-range", "empty", "path"],
)
def test_a_bad_prune_plan_is_refused(change: Callable[[dict], None], message: str) -> None:
    model, x = _setup(CASES["mlp-relu-relu6"])
    data = prune(model, deadcheck.scan(model, [x])).plan.to_dict()
    change(data)
    with pytest.raises(SwapError, match=message):
        PrunePlan.from_dict(data)


def test_a_plan_for_another_model_is_refused_naming_the_layer() -> None:
    model, x = _setup(CASES["mlp-relu-relu6"])
    plan = prune(model, deadcheck.scan(model, [x])).plan
    with pytest.raises(SwapError, match="cannot prune fc1: it is Linear of sizes"):
        apply_prune_plan(MLP(a=7).double(), plan)


def test_cli_prune_writes_a_plan_that_scan_replays(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "pruned"
    runner = CliRunner()
    result = runner.invoke(main, ["prune", "tests/targets/planted.py", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "act1: 2 dead unit(s) removed" in result.stdout
    assert "parameters: 21 -> 9 (-57.1%)" in result.stdout
    assert "largest difference 0 " in result.stdout and "forward time:" in result.stdout
    assert "act2: every unit is dead; unit 0 is kept" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".deadcheck-output",
        "HOWTO.txt",
        "prune_plan.json",
        "pruned.json",
        "state_dict.pt",
    ]
    assert "deadcheck scan tests/targets/planted.py --plan" in (out / "HOWTO.txt").read_text()
    scanned = runner.invoke(
        main,
        [
            *("scan", "tests/targets/planted.py", "--format", "json"),
            *("--plan", str(out / "prune_plan.json"), "--weights", str(out / "state_dict.pt")),
        ],
    )
    assert scanned.exit_code == 0, scanned.stderr
    units = {s["name"]: s["units"] for s in json.loads(scanned.stdout)["sites"]}
    assert units == {"act1": 2, "act2": 1, "act3": 1}
    again = runner.invoke(main, ["prune", "tests/targets/planted.py", "-o", str(out)])
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1
