"""Units that never crossed their kink, and slopes that are negative or above 1 (issue 23).

Planted units: a large positive bias keeps a unit's input above zero on every
input (linear: the identity), a large negative one below (dead for ReLU,
linear for the leaky kinds).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deadcheck
from deadcheck.core.findings import Code, Severity


def _planted(act: nn.Module, biases: tuple[float, ...], scale: float = 1.0) -> nn.Sequential:
    torch.manual_seed(0)
    layer = nn.Linear(4, len(biases))
    with torch.no_grad():
        layer.weight.mul_(scale)
        layer.bias.copy_(torch.tensor(biases))
    return nn.Sequential(layer, act)


def _report(model: nn.Module) -> deadcheck.Report:
    return deadcheck.scan(model, [torch.randn(32, 4), torch.randn(32, 4)])


CASES = [
    # (id, activation, biases, always on, linear, dead)
    ("relu-on-off-mixed", nn.ReLU(), (100.0, -100.0, 0.0), (0,), (0,), (1,)),
    ("relu-inplace", nn.ReLU(inplace=True), (100.0, -100.0, 0.0), (0,), (0,), (1,)),
    (
        "leaky-negative-side-is-linear-not-dead",
        nn.LeakyReLU(0.1),
        (100.0, -100.0, 0.0),
        (0,),
        (0, 1),
        (),
    ),
    ("prelu-negative-side-is-linear", nn.PReLU(3), (-100.0, -100.0, 0.0), (), (0, 1), ()),
    ("relu6-inside-the-band-is-linear", nn.ReLU6(), (3.0, 100.0, -100.0), (0,), (0,), (2,)),
]


@pytest.mark.parametrize(
    ("act", "biases", "on", "linear", "dead"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_linear_units_are_counted_exactly(
    act: nn.Module,
    biases: tuple[float, ...],
    on: tuple[int, ...],
    linear: tuple[int, ...],
    dead: tuple[int, ...],
) -> None:
    scale = 0.01 if isinstance(act, nn.ReLU6) else 1.0  # keep ReLU6's planted input near 3
    site = _report(_planted(act, biases, scale)).site("1")
    assert site.figures["always_on_units"] == on
    assert site.figures["linear_units"] == linear
    assert site.dead_units == dead


def test_linear_units_agree_with_a_reference_that_keeps_every_activation() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 64), nn.LeakyReLU(0.05))
    with torch.no_grad():
        model[0].bias[:20] += 3.0  # some units rarely, some never, leave one side
        model[0].bias[20:40] -= 3.0
    batches = [torch.randn(8, 5) for _ in range(3)]
    with torch.no_grad():
        pre = torch.cat([model[0](x) for x in batches])
    expected = tuple(u for u in range(64) if bool((pre[:, u] > 0).all() or (pre[:, u] <= 0).all()))
    assert 0 < len(expected) < 64
    site = _report_on(model, batches).site("1")
    assert site.figures["linear_units"] == expected
    assert site.dead_units == ()  # a leaky unit passes a gradient: never dead


def _report_on(model: nn.Module, batches: list[torch.Tensor]) -> deadcheck.Report:
    return deadcheck.scan(model, batches)


def test_the_linear_finding_says_what_was_measured_and_warns_at_the_dying_share() -> None:
    report = _report(_planted(nn.LeakyReLU(0.1), (100.0, -100.0, 0.0)))
    found = [f for f in report.findings if f.code is Code.LINEAR_UNITS]
    assert len(found) == 1
    assert found[0].severity is Severity.WARNING  # 2 of 3 >= the dying share 0.5
    assert found[0].units == (0, 1)
    assert found[0].message.startswith("2 of 3 units (67%) never crossed their kink on this data")
    assert not [f for f in report.findings if f.code in (Code.DEAD_UNITS, Code.DYING_LAYER)]
    one = _report(_planted(nn.ReLU(), (100.0, 0.0, 0.0)))
    found = [(f.code, f.severity) for f in one.findings if f.code is not Code.DORMANT_UNITS]
    assert found == [(Code.LINEAR_UNITS, Severity.INFO)]


def test_the_table_markdown_json_and_diff_show_the_linear_share() -> None:
    report = _report(_planted(nn.ReLU(), (100.0, 0.0, 0.0, 0.0)))
    assert "lin%" in deadcheck.render(report, "table")
    header = next(
        line
        for line in deadcheck.render(report, "markdown").splitlines()
        if line.startswith("| site |")
    )
    assert "linear %" in header
    row = next(
        line
        for line in deadcheck.render(report, "markdown").splitlines()
        if line.startswith("| `1`")
    )
    assert "| 25% |" in row
    data = report.to_dict()["sites"][0]
    assert data["always_on_units"] == [0] and data["linear_units"] == [0]
    assert deadcheck.Report.from_dict(report.to_dict()) == report
    healthy = _report(_planted(nn.ReLU(), (0.0, 0.0, 0.0, 0.0)))
    diff = deadcheck.diff_reports(healthy, report, fail_on_rise=0.0)
    linear = [c for c in diff.figures if c.figure == "linear_fraction"]
    assert [(c.site, c.new) for c in linear] == [("1", 0.25)]


SLOPES = [
    ("negative", (-0.2, 0.25, 0.25), {Code.NEGATIVE_SLOPE: (0,)}),
    ("above-one", (0.25, 1.5, 0.25), {Code.STEEP_SLOPE: (1,)}),
    (
        "negative-tiny-and-steep",
        (-0.001, 2.0, 0.25),
        {Code.NEGATIVE_SLOPE: (0,), Code.STEEP_SLOPE: (1,), Code.TINY_SLOPE: (0,)},
    ),
    ("pytorch-init-is-quiet", (0.25, 0.25, 0.25), {}),
]


@pytest.mark.parametrize(
    ("slopes", "expected"), [c[1:] for c in SLOPES], ids=[c[0] for c in SLOPES]
)
def test_slope_findings_name_the_units(
    slopes: tuple[float, ...], expected: dict[Code, tuple[int, ...]]
) -> None:
    act = nn.PReLU(3)
    with torch.no_grad():
        act.weight.copy_(torch.tensor(slopes))
    report = _report(_planted(act, (0.0, 0.0, 0.0)))
    slope_codes = {Code.NEGATIVE_SLOPE, Code.STEEP_SLOPE, Code.TINY_SLOPE, Code.NEAR_LINEAR_SLOPE}
    got = {f.code: f.units for f in report.findings if f.code in slope_codes}
    assert got == expected
    negative = [f for f in report.findings if f.code is Code.NEGATIVE_SLOPE]
    if negative:
        assert "fold their negative inputs upward" in negative[0].message


def test_one_shared_negative_slope_is_named_by_its_value() -> None:
    report = _report(_planted(nn.LeakyReLU(-0.3), (0.0, 0.0)))
    found = [f for f in report.findings if f.code is Code.NEGATIVE_SLOPE]
    assert [f.message.split(":")[0] for f in found] == ["slope -0.3 is negative"]
