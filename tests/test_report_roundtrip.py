"""A report read back from its JSON is the report (issue 21: Report.from_dict)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import deadcheck
from deadcheck.analysis.diffing import diff_reports
from deadcheck.core.errors import InputError
from deadcheck.core.thresholds import Thresholds
from deadcheck.results.report import Report


def _planted() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.ReLU(),
        nn.Conv2d(6, 5, 1),
        nn.PReLU(5),
        nn.Flatten(),
        nn.LazyLinear(7),
        nn.GELU(),
        nn.Linear(7, 4),
        nn.ReLU6(),
    )
    model(torch.randn(1, 3, 6, 6))
    with torch.no_grad():
        model[0].bias[:2] = -100.0
        model[3].weight.copy_(torch.tensor([0.25, -0.5, 1.0, 0.001, 0.9]))
    return model


CASES = [
    ("relu-family", {}),
    ("all-with-dormant", {"activations": "all", "dormant": 0.3}),
    ("dying-0.25", {"thresholds": Thresholds(dying=0.25)}),
]


@pytest.mark.parametrize("options", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_a_report_round_trips_through_json(options) -> None:
    report = deadcheck.scan(_planted(), [torch.randn(4, 3, 6, 6)], target="planted", **options)
    assert report.findings and report.sites
    text = deadcheck.render(report, "json")
    again = Report.from_dict(json.loads(text))
    assert again == report
    assert again.to_dict() == report.to_dict()


def test_a_partial_incomplete_report_round_trips() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x[: x.shape[0] // 2 + 1].reshape(-1)[: 3 + x.shape[0]])

    model = Odd()
    with deadcheck.record(model) as rec:
        model(torch.randn(2, 3))
        model(torch.randn(4, 3))  # another unit count: the site cannot be counted on
    report = rec.report()
    assert report.incomplete
    assert Report.from_dict(json.loads(deadcheck.render(report, "json"))) == report


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.update(schema="other/1"), "schema"),
        (lambda d: d["sites"][0].update(kind="Swishy"), "kind"),
        (lambda d: d["sites"][0].update(units=-1), "units"),
        (lambda d: d["sites"][0].update(zero_fraction=[None]), "zero_fraction"),
        (lambda d: d["findings"][0].update(severity="fatal"), "severity"),
        (lambda d: d.update(thresholds={"dying": 2.0}), "dying"),
        (lambda d: d.update(samples=True), "samples"),
    ],
    ids=["schema", "kind", "units", "null-figure", "severity", "threshold", "samples"],
)
def test_a_malformed_report_names_its_flaw(change, words) -> None:
    data = deadcheck.scan(_planted(), [torch.randn(2, 3, 6, 6)]).to_dict()
    change(data)
    with pytest.raises(InputError, match=words):
        Report.from_dict(data)


def test_diff_takes_reports() -> None:
    model = _planted()
    before = deadcheck.scan(model, [torch.randn(4, 3, 6, 6)])
    with torch.no_grad():
        model[0].bias[:4] = -100.0
    after = deadcheck.scan(model, [torch.randn(4, 3, 6, 6)])
    diff = diff_reports(before, after, fail_on_rise=0.05)
    assert diff.fails and [s.site for s in diff.rises] == ["1"]
    assert diff_reports(before.to_dict(), after.to_dict(), fail_on_rise=0.05) == diff


def test_scan_takes_a_dormant_number_as_the_threshold() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.GELU())
    batches = [torch.randn(16, 3)]
    at_half = deadcheck.scan(model, batches, activations="all", dormant=0.5)
    explicit = deadcheck.scan(model, batches, activations="all", dormant=0.5)
    assert at_half.thresholds.dormant == 0.5
    assert at_half.site("1").dormant_units == explicit.site("1").dormant_units


def test_scan_takes_one_tensor_as_one_batch() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    report = deadcheck.scan(model, torch.randn(6, 3))
    assert report.samples == 6 and report.site("1").positions == 6


def test_output_dash_is_stdout(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    from click.testing import CliRunner

    from deadcheck.cli import main

    monkeypatch.chdir(tmp_path)
    planted = Path(__file__).resolve().parent / "targets" / "planted.py"
    result = CliRunner().invoke(main, ["scan", str(planted), "--format", "json", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["samples"] > 0
    assert not (tmp_path / "-").exists()


def test_diff_compares_every_declared_share_and_gates_on_the_dead_one() -> None:
    """The dormant share is a statistic's diff scalar: diff shows it without naming it."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU())
    batches = [torch.randn(8, 4)]
    before = deadcheck.scan(model, batches, dormant_sums=True)
    with torch.no_grad():
        model[2].weight[:3] *= 1e-4  # three units of the second layer go quiet, not dead
        model[2].bias[:3] = 1e-6
    after = deadcheck.scan(model, batches, dormant_sums=True)
    diff = diff_reports(before, after, fail_on_rise=0.0)
    quiet = after.site("3").dormant_fraction
    assert quiet is not None and quiet >= 0.5
    dormant = {c.site: c for c in diff.figures if c.figure == "dormant_fraction"}
    assert dormant["3"].new == quiet and dormant["3"].change > 0
    assert {c.figure for c in diff.sites} == {"dead_fraction"}
    assert not diff.fails  # nothing died: the gate is on the dead share alone
    text = deadcheck.analysis.diffing.render_diff(diff)
    assert "\ndormant share\n" in text and "\ndead share\n" not in text
    plain = diff_reports(
        deadcheck.scan(model, batches, dormant_sums=False),
        deadcheck.scan(model, batches, dormant_sums=False),
        fail_on_rise=0.0,
    )
    # without dormant sums there is no dormant share to compare
    assert "dormant_fraction" not in {c.figure for c in plain.figures}
