"""swap(): every chosen site replaced, everything else kept, exact where it must be."""

from __future__ import annotations

import copy
import dataclasses
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from click.testing import CliRunner
from torch import nn

import deadcheck
from deadcheck.cli import main
from tests.test_recording import IMG, X5, FunctionalMLP, Twice, mlp

ROOT = Path(__file__).resolve().parent.parent


def tv(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs = {"init_weights": False} if name == "googlenet" else {}
            torch.manual_seed(0)
            return torchvision.models.get_model(name, weights=None, **kwargs).eval()

    return build


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.bn(self.conv(x)))
        return self.head(F.relu(h).mean((2, 3)))


@dataclass
class Model:
    id: str
    build: Callable[[], nn.Module]
    x: torch.Tensor
    sites: int  # ReLU sites "all" swaps


MODELS = [
    Model("mlp-module-sites", lambda: mlp(nn.ReLU()), X5, 1),
    Model("shared-module", Twice, IMG, 3),
    Model("functional-root", FunctionalMLP, X5, 3),
    Model("cnn-batchnorm-inplace-and-functional", CNN, torch.randn(2, 1, 5, 5), 2),
    Model("resnet18", tv("resnet18"), torch.randn(1, 3, 32, 32), 17),
    Model("googlenet-functional", tv("googlenet"), torch.randn(1, 3, 32, 32), 57),
]
IDS = [m.id for m in MODELS]


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(x)
    return out.logits if hasattr(out, "logits") else out


@pytest.mark.parametrize("case", MODELS, ids=IDS)
def test_leaky_zero_reproduces_outputs_exactly(case: Model) -> None:
    model = case.build().eval()
    swapped = deadcheck.swap(model, "leaky_relu", negative_slope=0.0, example_inputs=case.x)
    assert torch.equal(outputs(swapped, case.x), outputs(model, case.x))


@pytest.mark.parametrize("case", MODELS, ids=IDS)
def test_prelu_at_init_matches_leaky_at_that_slope(case: Model) -> None:
    model = case.build().eval()
    prelu = deadcheck.swap(model, "prelu", init=0.3, example_inputs=case.x)
    leaky = deadcheck.swap(model, "leaky_relu", negative_slope=0.3, example_inputs=case.x)
    torch.testing.assert_close(outputs(prelu, case.x), outputs(leaky, case.x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", MODELS, ids=IDS)
def test_scan_of_swapped_model_shows_new_kinds_at_the_sites(case: Model) -> None:
    model = case.build().eval()
    plan = deadcheck.plan_swap(model, "prelu", example_inputs=case.x)
    assert len(plan.sites) == case.sites
    swapped = deadcheck.apply_plan(copy.deepcopy(model), plan)
    with torch.no_grad(), deadcheck.record(swapped) as rec:
        swapped(case.x)
    stats = rec.stats()
    for site in plan.sites:
        after = stats.site(site.new_site)
        assert (after.kind, after.units) == ("PReLU", site.units)
        assert after.slope == pytest.approx(0.25 if site.units == 1 else (0.25,) * site.units)
    assert plan.parameters_added == sum(s.units for s in plan.sites)


@pytest.mark.parametrize("case", MODELS, ids=IDS)
def test_original_is_untouched_and_other_weights_kept(case: Model) -> None:
    model = case.build()
    before = copy.deepcopy(model.state_dict())
    kinds = [type(m) for m in model.modules()]
    swapped = deadcheck.swap(model, "prelu", example_inputs=case.x)
    assert [type(m) for m in model.modules()] == kinds
    after = swapped.state_dict()
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key
        assert torch.equal(after[key], value), key  # BatchNorm statistics included
    new_keys = set(after) - set(before)
    assert new_keys and all(k.endswith(".weight") for k in new_keys)
    assert swapped.training == model.training


def test_plan_replayed_on_a_fresh_model_fits_the_state_dict(tmp_path: Path) -> None:
    model = tv("resnet18")()
    x = torch.randn(1, 3, 32, 32)
    swapped = deadcheck.swap(model, "prelu", example_inputs=x)
    plan = deadcheck.plan_swap(model, "prelu", example_inputs=x)
    (tmp_path / "plan.json").write_text(plan.to_json())
    with torch.no_grad():
        for name, p in swapped.named_parameters():
            if name.endswith("relu_1.weight"):
                p.add_(0.5)  # trained slopes must travel with the state dict
    torch.save(swapped.state_dict(), tmp_path / "sd.pt")

    fresh = deadcheck.swap(tv("resnet18")(), plan=tmp_path / "plan.json")
    fresh.load_state_dict(torch.load(tmp_path / "sd.pt", weights_only=True))  # strict
    assert torch.equal(outputs(fresh, x), outputs(swapped, x))
    assert deadcheck.SwapPlan.load(tmp_path / "plan.json") == plan


def test_report_swaps_only_dead_and_dying_relu_sites() -> None:
    model = nn.Sequential(
        nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2), nn.LeakyReLU()
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0], [-1.0]]))  # both units fire on some inputs
        model[0].bias.zero_()
        model[2].bias.fill_(-100.0)
        model[2].weight.zero_()
        model[4].bias.fill_(-100.0)
        model[4].weight.zero_()
    with deadcheck.record(model) as rec:
        model(X5)
    report = rec.report()
    assert report.flagged_sites == ("3", "5")
    swapped = deadcheck.swap(model, "leaky_relu", sites=report)
    assert [type(m).__name__ for m in swapped] == [
        "Linear",
        "ReLU",
        "Linear",
        "LeakyReLU",
        "Linear",
        "LeakyReLU",
    ]


def test_prelu_slopes_get_gradients_and_learn() -> None:
    model = deadcheck.swap(mlp(nn.ReLU()), "prelu", example_inputs=X5)
    slope = model[1].weight
    before = slope.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(X5).sum().backward()
    assert slope.grad is not None and slope.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(slope.detach(), before)


def test_inplace_flag_dtype_and_inplace_swap() -> None:
    model = nn.Sequential(nn.Linear(1, 3), nn.ReLU(inplace=True)).double()
    leaky = deadcheck.swap(model, "leaky_relu", example_inputs=X5.double())
    assert leaky[1].inplace is True
    prelu = deadcheck.swap(model, "prelu", example_inputs=X5.double(), inplace=True)
    assert prelu is model
    assert model[1].weight.dtype == torch.float64 and model[1].weight.numel() == 3


class HalfSwappable(nn.Module):
    """A module site and a functional call in code with a data-dependent branch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc(x))
        if h.sum() > -1e9:  # data-dependent control flow: fx cannot trace it
            h = F.relu(h)
        return h


def test_a_failing_inplace_swap_leaves_the_model_as_it_was() -> None:
    model = HalfSwappable()
    plan = deadcheck.plan_swap(model, "prelu", sites=["act", ":relu"], example_inputs=X5)
    # The second site's caller already holds the name its new module would take.
    broken = dataclasses.replace(
        plan, sites=(plan.sites[0], dataclasses.replace(plan.sites[1], new_site="fc"))
    )
    with pytest.raises(deadcheck.SwapError, match="already has an attribute 'fc'"):
        deadcheck.swap(model, plan=broken, inplace=True)
    assert isinstance(model.act, nn.ReLU) and "forward" not in vars(model)


def test_bad_requests_fail_clearly() -> None:
    with pytest.raises(deadcheck.SwapError, match="no site named nope"):
        deadcheck.swap(mlp(nn.ReLU()), "prelu", sites=["nope"], example_inputs=X5)
    with pytest.raises(deadcheck.SwapError, match="example_inputs"):
        deadcheck.swap(mlp(nn.ReLU()), "prelu")
    with pytest.raises(deadcheck.SwapError, match="leaky_relu or prelu"):
        deadcheck.swap(mlp(nn.ReLU()), "gelu", example_inputs=X5)


def test_cli_swap_writes_state_plan_and_howto(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    out = tmp_path / "swapped"
    args = ["swap", "tests/targets/planted.py", "--to", "prelu", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.stderr
    assert "act1: ReLU -> PReLU, 4 slope(s) from 0.25" in result.stdout
    assert "act2: ReLU -> PReLU, 2 slope(s) from 0.25" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        ".deadcheck-output",
        "HOWTO.txt",
        "state_dict.pt",
        "swap_plan.json",
    ]
    plan = json.loads((out / "swap_plan.json").read_text())
    assert [s["site"] for s in plan["sites"]] == ["act1", "act2"]
    assert plan["parameters_added"] == 6
    state = torch.load(out / "state_dict.pt", weights_only=True)
    import sys

    sys.path.insert(0, str(ROOT / "tests/targets"))
    try:
        from planted import Planted
    finally:
        sys.path.pop(0)
    fresh = deadcheck.swap(Planted(), plan=out / "swap_plan.json")
    fresh.load_state_dict(state)
    assert isinstance(fresh.act1, nn.PReLU)

    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.stderr
    forced = CliRunner().invoke(main, [*args[:-2], "-o", str(out), "--force", "--sites", "act1"])
    assert forced.exit_code == 0
    assert [s["site"] for s in json.loads((out / "swap_plan.json").read_text())["sites"]] == [
        "act1"
    ]
    bad = CliRunner().invoke(main, [*args[:-2], "-o", str(tmp_path / "x"), "--sites", "zzz"])
    assert bad.exit_code == 2 and "no site named zzz" in bad.stderr


class NameClash(nn.Module):
    """Calls F.relu while already owning an attribute called relu."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(1, 3)
        self.relu = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(F.relu(self.fc(x)))


def test_new_module_names_avoid_the_callers_own() -> None:
    model = NameClash()
    plan = deadcheck.plan_swap(model, "prelu", example_inputs=X5)
    assert [(s.site, s.new_site) for s in plan.sites] == [(":relu", "relu_1")]
    swapped = deadcheck.apply_plan(copy.deepcopy(model), plan)
    assert isinstance(swapped.relu_1, nn.PReLU) and isinstance(swapped.relu, nn.Identity)
    with deadcheck.record(swapped) as rec:
        swapped(X5)
    assert rec.stats().names == ("relu_1",)
