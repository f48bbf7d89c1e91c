"""Each unit's largest input: the margin of a dead unit, against a reference that keeps them all."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deadcheck

BIASES = (-40.0, -0.01, 0.0)  # gone, a nudge from life, alive


def _model(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.bias.copy_(torch.tensor(BIASES))
        layer.weight[:2] = 0.0  # the first two units get their bias alone
    return nn.Sequential(layer, act)


def _batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randn(8, 4, generator=generator) for _ in range(3)]


def _reference(model: nn.Sequential) -> list[float]:
    with torch.no_grad():
        return torch.cat([model[0](x) for x in _batches()]).amax(0).tolist()


KNOWN = [True, True, True]
INPLACE_RELU = [False, False, True]  # a unit that never fired: its input is gone
CASES = [
    ("relu", nn.ReLU(), KNOWN),
    ("relu-inplace", nn.ReLU(inplace=True), INPLACE_RELU),
    ("relu6", nn.ReLU6(), KNOWN),
    ("relu6-inplace", nn.ReLU6(inplace=True), INPLACE_RELU),
    ("leaky", nn.LeakyReLU(0.1), KNOWN),
    ("leaky-inplace-derived-from-the-output", nn.LeakyReLU(0.1, inplace=True), KNOWN),
    ("prelu", nn.PReLU(3), KNOWN),
]


class Net(nn.Module):
    """A functional ReLU in the model's own forward, in place or not."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.layer = _model(nn.Identity())[0]
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.relu(self.layer(x), inplace=self.inplace)


@pytest.mark.parametrize(("act", "known"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_largest_input_matches_the_reference(act: nn.Module, known: list[bool]) -> None:
    model = _model(act)
    expected = _reference(model)
    site = deadcheck.scan(model, _batches(), margins=True).site("1")
    got = site.figures["max_input"]
    for unit, (value, want, is_known) in enumerate(zip(got, expected, known, strict=True)):
        if not is_known:
            assert value is None, unit
        elif isinstance(act, nn.LeakyReLU) and act.inplace and want < 0:
            assert value == pytest.approx(want, rel=1e-6), unit  # derived: y / slope
        else:
            assert value == want, unit  # read from the input itself: exact


@pytest.mark.parametrize("inplace", [False, True], ids=["functional", "functional-inplace"])
def test_a_functional_call_reads_its_input_unless_in_place(inplace: bool) -> None:
    model = Net(inplace)
    with torch.no_grad():
        expected = torch.cat([model.layer(x) for x in _batches()]).amax(0).tolist()
    site = deadcheck.scan(model, _batches(), margins=True).site(":relu")
    if inplace:
        assert site.figures["max_input"] == (None, None, expected[2])
    else:
        assert list(site.figures["max_input"]) == expected


def test_on_by_default_off_when_asked_and_kept_apart_from_the_other_counts() -> None:
    model = _model(nn.ReLU())
    plain = deadcheck.scan(model, _batches(), margins=False)
    assert plain.site("1").figures["max_input"] is None
    assert deadcheck.scan(model, _batches()).site("1").figures["max_input"] is not None
    with_margins = deadcheck.scan(model, _batches(), margins=True)
    assert with_margins.site("1").zero_fraction == plain.site("1").zero_fraction
    assert deadcheck.Report.from_dict(with_margins.to_dict()) == with_margins


def test_the_table_shows_the_margin_of_the_dead_unit_nearest_to_firing() -> None:
    report = deadcheck.scan(_model(nn.ReLU()), _batches(), margins=True)
    table = deadcheck.render(report, "table")
    assert any(line.startswith("site ") and "margin" in line for line in table.splitlines())
    row = next(line for line in table.splitlines() if line.startswith("1 "))
    assert "-0.01" in row.split()
    markdown = deadcheck.render(report, "markdown")
    assert "| margin |" in markdown and "| -0.01 |" in markdown
    data = report.to_dict()["sites"][0]
    assert data["max_input"][0] == -40.0


def test_a_reset_starts_the_maximum_again() -> None:
    model = _model(nn.ReLU())
    rec = deadcheck.Recorder(model, margins=True)
    with torch.no_grad(), rec:
        model(torch.full((2, 4), 10.0))
        rec.reset()
        model(torch.zeros(2, 4))
    site = rec.stats().site("1")
    # the +10 pass is forgotten: the third unit's largest input is now its bias, 0
    assert site.values["max_input"] == (-40.0, pytest.approx(-0.01), 0.0)


@pytest.mark.parametrize(
    ("act", "per_call"),
    [
        pytest.param(nn.ReLU(inplace=True), 1, id="relu-inplace"),
        pytest.param(nn.ReLU(), 0, id="relu"),
        pytest.param(nn.LeakyReLU(0.0), 1, id="leaky-slope-0"),  # read on its output
    ],
)
def test_calls_read_on_their_output_are_counted_exactly_through_resets(act, per_call) -> None:
    """``max_from_output`` counts, per unit, the calls whose maximum is of the output.

    Counted on the host and added when the site settles: every settling (a
    report, a reset) sees each call once.
    """
    model = _model(act).eval()
    batches = _batches()
    with deadcheck.record(model) as rec, torch.no_grad():
        for x in batches:
            model(x)
        first = rec.stats().site("1").values["max_from_output"]
        model(batches[0])
        second = rec.stats().site("1").values["max_from_output"]
        rec.reset()
        model(batches[1])
        model(batches[2])
        after_reset = rec.stats().site("1").values["max_from_output"]
    assert first == (3 * per_call,) * 3
    assert second == (4 * per_call,) * 3
    assert after_reset == (2 * per_call,) * 3
