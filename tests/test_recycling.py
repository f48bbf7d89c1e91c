"""Recycling dormant units: exactly the chosen rows and columns change, optimizer state included."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deadcheck
from deadcheck.repair.recycling import DEAD_NOTE, recycle

DEAD = (1, 3)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 6)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(6, 3)
        with torch.no_grad():
            self.fc1.bias[list(DEAD)] = -100.0  # planted: units 1 and 3 are dead

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(6, 4, 3, padding=1)
        with torch.no_grad():
            self.bn.bias[list(DEAD)] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.bn(self.conv1(x))))


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(4, 6)
        self.drop = nn.Dropout(0.0)
        self.fc2 = nn.Linear(6, 3)
        with torch.no_grad():
            self.fc1.bias[list(DEAD)] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


CASES = {
    "mlp": (MLP, (8, 4), "act", ["fc1.weight", "fc1.bias"], ["fc2.weight"]),
    "conv-bn": (
        ConvBN,
        (4, 2, 5, 5),
        "act",
        ["conv1.weight", "conv1.bias", "bn.weight", "bn.bias"],
        ["conv2.weight"],
    ),
    "functional": (Functional, (8, 4), ":relu", ["fc1.weight", "fc1.bias"], ["fc2.weight"]),
}


def _changed(before: torch.Tensor, after: torch.Tensor) -> set[int]:
    """Indices along axis 0 where anything changed."""
    diff = (before != after).reshape(before.shape[0], -1).any(1)
    return set(torch.nonzero(diff).flatten().tolist())


@pytest.mark.parametrize("case", sorted(CASES))
def test_recycle_changes_exactly_the_dormant_rows_and_columns(case: str) -> None:
    build, shape, site, rows_of, columns_of = CASES[case]
    model = build().train()
    x = torch.randn(shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(x).square().mean().backward()
    optimizer.step()  # optimizer state exists for every parameter
    with torch.no_grad(), deadcheck.record(model, dormant_sums=True) as rec:
        model(x)
    stats = rec.stats()
    assert stats.site(site).dead_units == DEAD
    before = copy.deepcopy(model.state_dict())
    state_before = {n: copy.deepcopy(optimizer.state[p]) for n, p in model.named_parameters()}
    result = recycle(model, stats, tau=0.1, optimizer=optimizer)
    assert result.recycled == {site: DEAD} and result.skipped == {}
    after = model.state_dict()
    params = dict(model.named_parameters())
    for name, value in before.items():
        if name in rows_of:
            assert _changed(value, after[name]) <= set(DEAD), name
            if name.endswith("weight") and not name.startswith("bn"):
                assert _changed(value, after[name]) == set(DEAD), name  # re-initialised rows
        elif name in columns_of:
            moved = after[name].movedim(1, 0)
            assert _changed(value.movedim(1, 0), moved) == set(DEAD), name
            assert torch.all(moved[list(DEAD)] == 0), name
        elif name.startswith("bn.running"):
            assert _changed(value, after[name]) == set(DEAD), name
        else:
            assert torch.equal(value, after[name]), name  # nothing else moved
        if name not in params:
            continue
        state, old = optimizer.state[params[name]], state_before[name]
        axis = 1 if name in columns_of else 0
        idx = [slice(None)] * axis + [list(DEAD)]
        rest = torch.ones_like(state["exp_avg"], dtype=torch.bool)
        if name in rows_of or name in columns_of:
            rest[tuple(idx)] = False
        if name in rows_of or name in columns_of:
            assert torch.all(state["exp_avg"][tuple(idx)] == 0), name
            assert torch.allclose(
                state["exp_avg_sq"][tuple(idx)],
                old["exp_avg_sq"][rest].mean().expand_as(state["exp_avg_sq"][tuple(idx)]),
            ), name
        assert torch.equal(state["exp_avg"][rest], old["exp_avg"][rest]), name
        assert torch.equal(state["exp_avg_sq"][rest], old["exp_avg_sq"][rest]), name
    with torch.no_grad(), deadcheck.record(model, dormant_sums=True) as rec:
        model(x)
    assert rec.stats().site(site).dead_units == ()  # the recycled units fire again


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(4, 4)
        with torch.no_grad():
            self.fc1.bias[1] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(x))
        return self.fc2(h) + h  # the unit goes on through the residual


class Normed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(4, 2)
        with torch.no_grad():
            self.norm.bias[1] = -100.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.norm(self.fc1(x))))


@pytest.mark.parametrize(
    ("build", "reason"),
    [(Residual, "a residual add"), (Normed, "LayerNorm norm, not a Linear or Conv")],
    ids=["residual-add", "layernorm-between"],
)
def test_sites_that_are_not_a_plain_chain_are_skipped_with_the_reason(build, reason: str) -> None:
    torch.manual_seed(0)
    model = build()
    x = torch.randn(8, 4)
    with torch.no_grad(), deadcheck.record(model, dormant_sums=True) as rec:
        model(x)
    before = copy.deepcopy(model.state_dict())
    result = recycle(model, rec.stats())
    assert result.recycled == {}
    assert reason in result.skipped["act"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])  # never recycled wrongly


def test_without_dormant_statistics_relu_sites_go_by_dead_units_and_leaky_ones_are_skipped() -> (
    None
):
    model = MLP()
    with torch.no_grad(), deadcheck.record(model, dormant_sums=False) as rec:
        model(torch.randn(8, 4))
    stats = rec.stats()
    result = recycle(model, stats)
    assert result.notes == {"act": DEAD_NOTE} and not result.skipped
    dead = stats.site("act").dead_units
    assert result.recycled == ({"act": dead} if dead else {})
    mixed = nn.Sequential(
        nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3), nn.LeakyReLU(0.1), nn.Linear(3, 2)
    )
    with torch.no_grad():
        mixed[0].bias.fill_(-100.0)  # planted: the ReLU's three units are dead
    with torch.no_grad(), deadcheck.record(mixed, dormant_sums=False) as rec:
        mixed(torch.randn(8, 4))
    result = recycle(mixed, rec.stats())
    assert result.recycled == {"1": (0, 1, 2)} and result.notes == {"1": DEAD_NOTE}
    assert result.skipped == {"3": "no dormant statistics: record with dormant_sums=True"}
    # No site with anything to judge by: an error that says what to record, not an empty success.
    leaky = nn.Sequential(nn.Linear(4, 3), nn.LeakyReLU(0.1), nn.Linear(3, 2))
    with torch.no_grad(), deadcheck.record(leaky, dormant_sums=False) as rec:
        leaky(torch.randn(8, 4))
    with pytest.raises(deadcheck.InputError, match=r"no site has dormant statistics \(1\)"):
        recycle(leaky, rec.stats())


def test_the_recycler_recycles_in_a_training_loop() -> None:
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 4)
    with deadcheck.Recycler(model, optimizer, every=3, tau=0.1) as recycler:
        results = []
        for _ in range(6):
            model(x).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            results.append(recycler.step())
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].recycled == {"act": DEAD}
    assert results[5] is not None and results[5].recycled.get("act", ()) != DEAD
    assert not model._forward_hooks and not model.act._forward_hooks  # detached


def test_recycle_after_a_plain_record_recycles_exactly_the_dead_units() -> None:
    """No dormant statistics: a ReLU site's dead units (mean |output| 0) are recycled, and said."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        model[0].bias[[1, 4]] = -100.0  # planted: units 1 and 4 never fire
    with deadcheck.record(model, dormant_sums=False) as rec:
        model(torch.randn(32, 3))
    report = rec.report()
    assert report.site("1").mean_abs is None
    result = deadcheck.recycle(model, report)
    assert result.recycled == {"1": (1, 4)}
    assert "dead units" in result.notes["1"]
    assert model[0].bias[1] > -100.0 and torch.all(model[2].weight[:, [1, 4]] == 0)


def test_recycle_with_no_site_recorded_is_a_clear_error(tmp_path) -> None:
    from click.testing import CliRunner

    from deadcheck.cli import main
    from deadcheck.core.errors import InputError

    model = nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 2))
    with deadcheck.record(model) as rec:  # the ReLU family only: the GELU is no site
        model(torch.randn(8, 3))
    with pytest.raises(InputError, match="nothing to recycle"):
        deadcheck.recycle(model, rec.report())
    target = tmp_path / "gelu.py"
    target.write_text(
        "import torch\nfrom torch import nn\n"
        "model = nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 2))\n"
        "example_input = torch.randn(8, 3)\n"
    )
    weights = tmp_path / "w.pt"
    torch.save(nn.Sequential(nn.Linear(3, 6), nn.GELU(), nn.Linear(6, 2)).state_dict(), weights)
    result = CliRunner().invoke(
        main,
        [
            *("recycle", str(target), "--weights", str(weights)),
            *("--activations", "relu", "--output", str(tmp_path / "o")),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--activations" in result.stderr and "nothing to recycle" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "name",
    [
        "bn-after-linear-folded",
        "bn-maxpool-padded-conv-dropout-flatten",
        "defaulted-flag-helper-method",
        "functional-pool-pad-mean-view",
        "mlp-relu-relu6",
    ],
)
def test_recycling_reaches_the_chains_pruning_does(name: str) -> None:
    """Every op that keeps units apart (pooling, padding, BatchNorm after, flatten) is crossed."""
    from tests.test_pruning import CASES, _setup

    case = CASES[name]
    model, x = _setup(case)
    report = deadcheck.scan(model, [x], dormant=0.1)
    result = recycle(model, report)
    assert result.skipped == {}
    for site, planted in case.removed.items():
        assert set(planted) <= set(result.recycled[site])
    # What reads a recycled unit reads zero from it: the consumer's columns are zeroed.
    consumers = {
        "bn-after-linear-folded": [(model.head, 1, (0, 3))],
        "bn-maxpool-padded-conv-dropout-flatten": [(model.head, 16, (3,))],
        "mlp-relu-relu6": [(model.head, 1, (0,))],
    }.get(name, [])
    for layer, span, units in consumers:
        columns = [u * span + k for u in units for k in range(span)]
        assert torch.count_nonzero(layer.weight[:, columns]) == 0
