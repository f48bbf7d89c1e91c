"""How results look where users read them: short reprs, notebook HTML and Markdown, a DataFrame."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import deadcheck

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report() -> deadcheck.Report:
    sys.path.insert(0, str(ROOT / "tests" / "targets"))
    try:
        import planted
    finally:
        sys.path.pop(0)
    return deadcheck.scan(planted.Planted(), list(planted.batches()), target="planted")


def test_reprs_are_one_short_line(report: deadcheck.Report) -> None:
    assert repr(report) == "Report(planted: 8 samples, 3 sites, 1 error, 3 warnings)"
    assert [repr(s) for s in report.sites] == [
        "SiteReport('act1', ReLU, 4 units, 2 dead)",
        "SiteReport('act2', ReLU, 2 units, 2 dead)",
        "SiteReport('act3', LeakyReLU, 1 units)",
    ]
    snapshot = deadcheck.Snapshot(step=100, report=report)
    assert repr(snapshot) == f"Snapshot(step 100: {report!r})"


@pytest.mark.parametrize(
    ("name", "show"),
    [("planted.notebook.html", "_repr_html_"), ("planted.notebook.md", "_repr_markdown_")],
    ids=["html", "markdown"],
)
def test_the_notebook_shows_a_table(report: deadcheck.Report, name: str, show: str, golden) -> None:
    text = getattr(report, show)()
    golden(name, text)
    assert "act1" in text and "dead-layer" in text


def test_the_html_escapes_what_a_model_names(report: deadcheck.Report) -> None:
    import dataclasses

    odd = dataclasses.replace(report, target="<script>alert(1)</script>")
    assert "<script>" not in odd._repr_html_() and "&lt;script&gt;" in odd._repr_html_()


def test_to_dataframe_has_a_row_per_site_with_its_figures(report: deadcheck.Report) -> None:
    frame = report.to_dataframe()
    assert list(frame["site"]) == ["act1", "act2", "act3"]
    assert list(frame["units"]) == [4, 2, 1]
    assert list(frame["dead_fraction"]) == [0.5, 1.0, 0.0]
    assert {"kind", "zero_fraction_mean", "linear_fraction"} <= set(frame.columns)
