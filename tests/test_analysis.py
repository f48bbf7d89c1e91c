"""analyze() on hand-written stats: which findings, which severities, which units."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deadcheck import SiteId, SiteStats, Stats, analyze


def site(
    zeros: tuple[int, ...],
    positions: int = 10,
    kind: str = "ReLU",
    slope: Any = None,
    nan: tuple[int, ...] | None = None,
    saturated: tuple[int, ...] | None = None,
    name: str = "s",
) -> SiteStats:
    return SiteStats(
        id=SiteId(module=name),
        kind=kind,
        unit_axis=1,
        units=len(zeros),
        calls=1,
        positions=positions,
        values={
            "zeros": zeros,
            "nan": nan or tuple(0 for _ in zeros),
            **({} if saturated is None else {"saturated": saturated}),
        },
        slope=slope,
    )


CASES = [
    ("healthy-relu", site((3, 5, 9)), []),
    (
        "one-dead-unit-is-info",
        site((10, 5, 9, 0)),
        [("dead-units", "info", (0,)), ("linear-units", "info", (3,))],
    ),
    (
        "half-dead-is-dying",
        site((10, 10, 9, 0)),
        [("dying-layer", "warning", (0, 1)), ("linear-units", "info", (3,))],
    ),
    (
        "a-leaky-unit-that-stayed-negative-is-linear-not-dead",
        site((10, 5), kind="LeakyReLU", slope=0.01),
        [("linear-units", "warning", (0,))],
    ),
    ("all-dead-is-dead-layer", site((10, 10)), [("dead-layer", "error", (0, 1))]),
    ("nan-is-error", site((1, 2), nan=(0, 3)), [("nan-activations", "error", (1,))]),
    ("prelu-default-0.25-is-healthy", site((3, 4), kind="PReLU", slope=(0.25, 0.25)), []),
    ("leaky-0.01-is-healthy", site((3, 4), kind="LeakyReLU", slope=0.01), []),
    (
        "leaky-0.9-is-near-linear",
        site((3, 4), kind="LeakyReLU", slope=0.9),
        [("near-linear-slope", "warning", ())],
    ),
    (
        "leaky-0.7-edge-is-near-linear",
        site((3,), kind="LeakyReLU", slope=0.7),
        [("near-linear-slope", "warning", ())],
    ),
    ("leaky-0.69-is-not", site((3,), kind="LeakyReLU", slope=0.69), []),
    (
        "leaky-0.001-is-tiny",
        site((3,), kind="LeakyReLU", slope=0.001),
        [("tiny-slope", "info", ())],
    ),
    ("leaky-0.005-edge-is-not-tiny", site((3,), kind="LeakyReLU", slope=0.005), []),
    (
        "prelu-per-unit-slopes",
        site((3, 4, 5), kind="PReLU", slope=(0.25, 1.1, -0.001)),
        [
            ("near-linear-slope", "warning", (1,)),
            ("negative-slope", "info", (2,)),
            ("steep-slope", "info", (1,)),
            ("tiny-slope", "info", (2,)),
        ],
    ),
    (
        "relu6-stuck-at-cap",
        site((0, 2), kind="ReLU6", saturated=(10, 0)),
        [("saturated-units", "info", (0,))],
    ),
    ("no-positions-no-findings", site((0, 0), positions=0), []),
]


@pytest.mark.parametrize(
    ("stats_site", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_findings(stats_site: SiteStats, expected: list[tuple[str, str, tuple[int, ...]]]) -> None:
    report = analyze(Stats(sites=(stats_site,), samples=10))
    assert [(f.code, f.severity, f.units) for f in report.findings] == expected


def test_thresholds_are_keyword_arguments() -> None:
    stats = Stats(sites=(site((10, 1, 1, 1)),), samples=10)
    assert [f.code for f in analyze(stats).findings] == ["dead-units"]
    assert [f.code for f in analyze(stats, dying=0.25).findings] == ["dying-layer"]
    with pytest.raises(ValueError, match="dying"):
        analyze(stats, dying=0)


def test_flagged_sites_and_fail_on() -> None:
    stats = Stats(
        sites=(site((10, 0), name="a"), site((10, 10), name="b"), site((1, 1), name="c")),
        samples=10,
    )
    report = analyze(stats)
    assert report.flagged_sites == ("a", "b")
    assert report.worst_severity == "error"
    assert report.fails("error") and report.fails("warning")
    assert not analyze(Stats(sites=(site((1,)),), samples=1)).fails("warning")


def test_json_report_has_contract_fields() -> None:
    report = analyze(Stats(sites=(site((10, 5), kind="PReLU", slope=(0.25, 0.3)),), samples=7))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["schema"] == "deadcheck.report/1"
    assert data["samples"] == 7
    (s,) = data["sites"]
    assert {k: s[k] for k in ("name", "kind", "units", "unit_axis", "positions")} == {
        "name": "s",
        "kind": "PReLU",
        "units": 2,
        "unit_axis": 1,
        "positions": 10,
    }
    assert s["zero_fraction"] == [1.0, 0.5]
    assert s["dead_units"] == []  # a PReLU unit that stayed negative still passes a gradient
    assert s["linear_units"] == [0]
    assert s["dead_fraction"] == 0.0
    assert s["slope"] == [0.25, 0.3]
    (f,) = data["findings"]
    assert f == {
        "code": "linear-units",
        "severity": "warning",
        "site": "s",
        "message": f["message"],
        "units": [0],
    }
