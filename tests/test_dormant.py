"""Dormant statistics against a brute-force reference that stores every output."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deadcheck

ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "leaky": lambda: nn.LeakyReLU(0.1)}


class Net(nn.Module):
    def __init__(self, act: str, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 6, 3)
        self.a1 = ACTS[act]()
        self.fc = nn.Linear(6, 5)
        self.a2 = ACTS[act]()
        with torch.no_grad():
            self.conv.bias[0] = -50.0  # a dead channel: dormant with score 0
            self.fc.weight[1] *= 0.01  # a nearly silent feature: dormant, not dead
            self.fc.bias[1] = 0.001

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a1(self.conv(x))
        return self.a2(self.fc(h.mean((2, 3))))


def _outputs(model: Net, batches: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    seen: dict[str, list[torch.Tensor]] = {"a1": [], "a2": []}
    handles = [
        getattr(model, name).register_forward_hook(
            lambda m, a, out, name=name: seen[name].append(out.detach().double())
        )
        for name in seen
    ]
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("act", sorted(ACTS))
def test_mean_abs_and_dormant_score_match_brute_force(act: str, seed: int) -> None:
    model = Net(act, seed).eval()
    batches = [
        torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(seed + i)) for i in range(3)
    ]
    reference = _outputs(model, batches)
    activations = "all" if act == "gelu" else "relu"
    with (
        torch.no_grad(),
        deadcheck.record(model, activations=activations, dormant_sums=True) as rec,
    ):
        for x in batches:
            model(x)
    stats = rec.stats()
    for name, axis in (("a1", 1), ("a2", 1)):
        outs = torch.cat([o.movedim(axis, -1).reshape(-1, o.shape[axis]) for o in reference[name]])
        mean_abs = outs.abs().mean(0)
        score = mean_abs / mean_abs.mean()
        site = stats.site(name)
        assert site.mean_abs == pytest.approx(mean_abs.tolist(), rel=1e-5, abs=1e-12)
        assert site.dormant_score == pytest.approx(score.tolist(), rel=1e-5, abs=1e-9)
        expected = tuple(int(u) for u in torch.nonzero(score <= 0.1).flatten())
        assert site.dormant_units(0.1) == expected
    if act != "leaky":  # LeakyReLU(0.1) of -50 is -5: loud, so not dormant, though "dead"
        assert 0 in stats.site("a1").dormant_units(0.1)  # the planted dead channel
    assert 1 in stats.site("a2").dormant_units(0.1)  # the planted silent feature
    if act == "gelu":
        assert stats.site("a1").dead_units == ()  # GELU units are never "dead"
    report = deadcheck.analyze(stats)
    assert report.site("a2").dormant_units == expected
    # A dormant unit is reported: as dormant, or as dead where every dormant unit is dead.
    reported = {u for f in report.findings_for("a2") if "units" in f.code for u in f.units}
    assert 1 in reported


def test_without_dormant_statistics_nothing_is_claimed() -> None:
    model = Net("relu", 0).eval()
    with torch.no_grad(), deadcheck.record(model, dormant_sums=False) as rec:
        model(torch.randn(2, 3, 6, 6))
    report = rec.report()
    assert report.site("a1").mean_abs is None and report.site("a1").dormant_units is None
    assert not any(f.code == "dormant-units" for f in report.findings)
    assert report.to_dict()["sites"][0]["dormant_units"] is None


def test_dormant_counts_sum_across_ranks_like_the_rest() -> None:
    """abs_sum travels in the same one transfer: stats() twice gives the same figures."""
    model = Net("relu", 0).eval()
    with torch.no_grad(), deadcheck.record(model, dormant_sums=True) as rec:
        model(torch.randn(2, 3, 6, 6))
    assert rec.stats().site("a1").abs_sum == rec.stats().site("a1").abs_sum


def test_markdown_and_the_table_show_the_same_columns_for_a_gelu_site() -> None:
    """Markdown printed "0 dead, 0%, 51% zero" for a GELU site and no dormant column (issue 21).

    Columns now come from the statistics' declarations, once, for both formats.
    """
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 8), nn.ReLU())
    with torch.no_grad():
        model[0].weight[:4] = 0.0
        model[0].bias[:4] = -1e-3  # four GELU units sit just below zero: dormant, not dead
    report = deadcheck.scan(model, [torch.randn(16, 6)], activations="all")
    gelu = report.site("1")
    assert gelu.kind == "GELU" and gelu.dormant_units is not None
    assert set(gelu.dormant_units) >= {0, 1, 2, 3}
    markdown = deadcheck.render(report, "markdown")
    header = next(line for line in markdown.splitlines() if line.startswith("| site |"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "site",
        "kind",
        "units",
        "dead",
        "dead %",
        "linear %",
        "dormant %",
        "margin",  # the ReLU site's dead units' margins (on by default)
        "mean zero %",
        "slope",
    ]
    row = next(line for line in markdown.splitlines() if line.startswith("| `1` |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    share = f"{100 * len(gelu.dormant_units) / 8:.0f}%"
    assert cells == ["`1`", "GELU", "8", "-", "-", "-", share, "-", "-", "-"]
    table = deadcheck.render(report, "table", all_sites=True)
    line = next(line for line in table.splitlines() if line.startswith("1 "))
    assert line.split() == ["1", "GELU", "8", "-", "-", "-", share, "-", "-", "-"]


def _scores_net() -> nn.Sequential:
    """One ReLU layer whose unit scores are 2.0, 0.2 and 0.8 on an input of ones."""
    model = nn.Sequential(nn.Linear(1, 3), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[4.0], [0.4], [1.6]]))
        model[0].bias.zero_()
    return model


WAYS = {
    "scan": lambda model, x, tau: deadcheck.scan(model, [x], dormant=tau),
    "record-then-report": lambda model, x, tau: _recorded(model, x).report(dormant=tau),
    "thresholds": lambda model, x, tau: deadcheck.scan(
        model, [x], dormant_sums=True, thresholds=deadcheck.Thresholds(dormant=tau)
    ),
    "callback-options": lambda model, x, tau: _watched(model, x, tau),
}


def _recorded(model: nn.Module, x: torch.Tensor) -> deadcheck.Recorder:
    with torch.no_grad(), deadcheck.record(model, dormant_sums=True) as rec:
        model(x)
    return rec


def _watched(model: nn.Module, x: torch.Tensor, tau: float) -> deadcheck.Report:
    from deadcheck.integrations._core import Options, Watch

    watch = Watch(model.train(), Options(every=1, dormant=tau), writer=None, log_dir=None)
    try:
        with torch.no_grad():
            model(x)
        watch.step()
        report = watch.monitor.report()
        assert report is not None
        return report
    finally:
        watch.close()


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize(("tau", "dormant"), [(0.1, ()), (0.5, (1,)), (0.9, (1, 2))])
def test_dormant_is_the_threshold_tau_everywhere(way: str, tau: float, dormant: tuple) -> None:
    report = WAYS[way](_scores_net(), torch.ones(4, 1), tau)
    assert report.thresholds.dormant == tau
    assert report.site("1").dormant_units == dormant


@pytest.mark.parametrize("bad", [True, False, 1.5, -0.1, "0.5"], ids=repr)
def test_scan_refuses_a_dormant_that_is_not_a_threshold(bad: object) -> None:
    with pytest.raises(deadcheck.InputError, match="dormant is the dormant threshold tau"):
        deadcheck.scan(_scores_net(), [torch.ones(2, 1)], dormant=bad)  # type: ignore[arg-type]


def test_prelu_slopes_off_the_unit_axis_take_their_sums_from_the_output() -> None:
    """A unit_axis override puts PReLU's per-channel slopes off the unit axis: mean |output|
    is then summed from the output itself, and still equals brute force."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.PReLU(3)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([0.5, -0.25, 2.0]))
    x = torch.randn(4, 1, 5, 6)
    report = deadcheck.scan(model, [x], unit_axis={"1": 3})  # units: the 6 columns
    with torch.no_grad():
        out = model(x)
    want = out.abs().double().movedim(3, 0).reshape(6, -1).mean(1).tolist()
    got = report.site("1").mean_abs
    assert got is not None and len(got) == 6
    assert torch.allclose(
        torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64), rtol=1e-5
    )
