"""Hostile or malformed input: one line, exit 2, nothing of the user's replaced (issue 22)."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import deadcheck
from deadcheck.analysis.diffing import diff_reports
from deadcheck.cli import main
from deadcheck.core.errors import InputError, SwapError
from deadcheck.core.files import MARKER
from deadcheck.repair.swapping import SwapPlan

ROOT = Path(__file__).resolve().parent.parent
PLANTED = str(ROOT / "tests" / "targets" / "planted.py")


def one_line_exit_2(result) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("deadcheck: error")]
    assert len(lines) == 1, result.stderr


# -- non-finite options --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["scan", PLANTED, "--near-linear", "nan"],
        ["scan", PLANTED, "--tiny-slope", "nan"],
        ["scan", PLANTED, "--dying", "inf"],
    ],
    ids=["near-linear-nan", "tiny-slope-nan", "dying-inf"],
)
def test_non_finite_thresholds_are_refused(args) -> None:
    one_line_exit_2(CliRunner().invoke(main, args))


@pytest.mark.parametrize(
    "args",
    [
        ["--to", "leaky_relu", "--negative-slope", "nan"],
        ["--to", "leaky_relu", "--negative-slope", "inf"],
        ["--to", "prelu", "--init", "nan"],
    ],
    ids=["slope-nan", "slope-inf", "init-nan"],
)
def test_non_finite_swap_slopes_are_refused(tmp_path: Path, args) -> None:
    result = CliRunner().invoke(main, ["swap", PLANTED, *args, "--output", str(tmp_path / "o")])
    one_line_exit_2(result)
    assert not (tmp_path / "o").exists()


def test_reports_with_nan_figures_are_standard_json() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.PReLU())
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with deadcheck.record(model, dormant_sums=True) as rec:
        model(torch.tensor([[float("nan"), 1.0]]))
    text = deadcheck.render(rec.report(), "json")
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    assert data["sites"][0]["slope"] is None
    assert any(f["code"] == "nan-activations" for f in data["findings"])


# -- reports for diff -----------------------------------------------------------------


def good_report() -> dict:
    """A real report as JSON: one ReLU site with dead units, and its findings."""
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.copy_(torch.tensor([-1.0, 1.0, -1.0, 1.0]))
    report = deadcheck.scan(model, [torch.randn(3, 2)])
    assert report.findings
    return json.loads(deadcheck.render(report, "json"))


def _breakage() -> st.SearchStrategy:
    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )
    return st.sampled_from(
        ["sites", "site", "name", "dead_fraction", "findings", "finding", "severity", "code"]
    ).flatmap(lambda where: st.tuples(st.just(where), junk))


def _break(report: dict, where: str, value: object) -> dict:
    report = copy.deepcopy(report)
    if where in ("sites", "findings"):
        report[where] = value
    elif where == "site":
        report["sites"][0] = value
    elif where == "finding":
        report["findings"][0] = value
    elif where in ("name", "dead_fraction"):
        report["sites"][0][where] = value
    else:
        report["findings"][0][where] = value
    return report


def _fraction_ok(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and abs(value) < 10**300
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def _valid(report: dict) -> bool:
    """The reference judgement, written independently of deadcheck's check."""
    sites, findings = report["sites"], report["findings"]
    if not isinstance(sites, list) or not isinstance(findings, list):
        return False
    sites_ok = all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and _fraction_ok(s.get("dead_fraction"))
        for s in sites
    )
    findings_ok = all(
        isinstance(f, dict)
        and all(isinstance(f.get(k), str) for k in ("code", "severity", "site"))
        and f["severity"] in ("info", "warning", "error")
        for f in findings
    )
    return sites_ok and findings_ok


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(breakage=_breakage())
def test_malformed_reports_are_refused_by_diff(tmp_path_factory, breakage) -> None:
    where, value = breakage
    bad = _break(good_report(), where, value)
    if _valid(bad):
        return  # the junk happened to be a valid value
    with pytest.raises(InputError):
        diff_reports(good_report(), bad, fail_on_rise=0.0)
    folder = tmp_path_factory.mktemp("diff")
    (folder / "old.json").write_text(json.dumps(good_report()))
    (folder / "new.json").write_text(json.dumps(bad))
    before = (folder / "new.json").read_bytes()
    result = CliRunner().invoke(
        main, ["diff", str(folder / "old.json"), str(folder / "new.json"), "--fail-on-rise", "0"]
    )
    one_line_exit_2(result)
    assert (folder / "new.json").read_bytes() == before


def test_a_deeply_nested_report_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps(good_report()))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    one_line_exit_2(
        CliRunner().invoke(main, ["diff", str(tmp_path / "old.json"), str(tmp_path / "deep.json")])
    )


def test_a_5000_digit_dead_share_is_refused(tmp_path: Path) -> None:
    bad = good_report()
    bad["sites"][0]["dead_fraction"] = 10**5000
    with pytest.raises(InputError, match="dead_fraction"):
        diff_reports(good_report(), bad)
    (tmp_path / "old.json").write_text(json.dumps(good_report()))
    text = json.dumps(good_report()).replace(
        '"dead_fraction": 0.5', '"dead_fraction": 1' + "0" * 5000
    )
    assert "0" * 5000 in text
    (tmp_path / "new.json").write_text(text)
    one_line_exit_2(
        CliRunner().invoke(main, ["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    )


def test_nan_dead_share_fails_the_gate_closed() -> None:
    bad = good_report()
    bad["sites"][0]["dead_fraction"] = float("nan")
    with pytest.raises(InputError, match="dead_fraction"):
        diff_reports(good_report(), bad, fail_on_rise=0.0)


# -- swap plans ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_plan(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("swap") / "out"
    result = CliRunner().invoke(main, ["swap", PLANTED, "--to", "prelu", "--output", str(folder)])
    assert result.exit_code == 0, result.output
    return json.loads((folder / "swap_plan.json").read_text())


PLAN_BREAKAGE = [
    ("top-level-list", lambda p: [p]),
    ("sites-not-a-list", lambda p: {**p, "sites": {"a": 1}}),
    ("to-sigmoid", lambda p: {**p, "to": "sigmoid"}),
    ("how-explode", lambda p: _site(p, how="explode")),
    ("num-parameters-huge", lambda p: _site(p, num_parameters=10**12)),
    ("num-parameters-negative", lambda p: _site(p, num_parameters=-5)),
    ("slope-string", lambda p: _site(p, slope="0.1")),
    ("unit-axis-huge", lambda p: _site(p, unit_axis=99)),
    ("inplace-string", lambda p: _site(p, activation_inplace="yes")),
    ("occurrences-zero", lambda p: _site(p, occurrences=0)),
    ("caller-dunder-class", lambda p: _site(p, caller="__class__")),
    ("new-site-modules", lambda p: _site(p, new_site="_modules")),
    ("new-site-training", lambda p: _site(p, new_site="training")),
    ("module-forward", lambda p: _site(p, module="forward")),
    ("module-dict", lambda p: _site(p, module="__dict__")),
    ("unknown-field", lambda p: _site(p, explode=True)),
    ("kind-unknown", lambda p: _site(p, kind="Sigmoidish")),
]


def _site(plan: dict, **change: object) -> dict:
    plan = copy.deepcopy(plan)
    plan["sites"][0].update(change)
    return plan


@pytest.mark.parametrize(
    "breaking", [b[1] for b in PLAN_BREAKAGE], ids=[b[0] for b in PLAN_BREAKAGE]
)
def test_malformed_plans_are_refused_before_the_model_is_touched(saved_plan, breaking) -> None:
    with pytest.raises(SwapError):
        SwapPlan.from_dict(breaking(saved_plan))


@pytest.mark.parametrize("module", ["", "hidden_linear"], ids=["whole-model", "a-linear"])
def test_a_plan_naming_a_non_activation_module_is_refused(tmp_path: Path, module: str) -> None:
    model = nn.Sequential()
    model.add_module("hidden_linear", nn.Linear(2, 2))
    model.add_module("act", nn.ReLU())
    report = deadcheck.scan(model, [torch.randn(3, 2)])
    plan = deadcheck.repair.swapping.plan_swap(model, "leaky_relu", report=report).to_dict()
    plan["sites"][0]["module"] = module
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(SwapError, match="not the ReLU"):
        deadcheck.swap(model, plan=SwapPlan.from_dict(plan))
    assert isinstance(model.hidden_linear, nn.Linear)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


# -- special files and the user's folders ---------------------------------------------


def test_diff_and_plan_refuse_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    (tmp_path / "old.json").write_text(json.dumps(good_report()))
    one_line_exit_2(CliRunner().invoke(main, ["diff", str(tmp_path / "old.json"), str(fifo)]))
    weights = tmp_path / "w.pt"
    torch.save({}, weights)
    result = CliRunner().invoke(
        main, ["scan", PLANTED, "--plan", str(fifo), "--weights", str(weights)]
    )
    one_line_exit_2(result)


def test_force_never_replaces_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    result = CliRunner().invoke(
        main, ["scan", PLANTED, "--format", "json", "-o", str(fifo), "--force"]
    )
    one_line_exit_2(result)
    assert fifo.is_fifo()


def test_force_never_deletes_a_folder_deadcheck_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    result = CliRunner().invoke(
        main, ["swap", PLANTED, "--to", "prelu", "--output", str(mine), "--force"]
    )
    one_line_exit_2(result)
    assert (mine / "thesis.tex").read_text() == "years of work"
    out = tmp_path / "out"
    for _ in range(2):  # deadcheck's own folder is replaced with --force
        result = CliRunner().invoke(
            main, ["swap", PLANTED, "--to", "prelu", "--output", str(out), "--force"]
        )
        assert result.exit_code == 0, result.output
    assert (out / MARKER).exists()


def test_stale_temporaries_are_cleaned_and_a_stranded_output_restored(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert (
        CliRunner().invoke(main, ["swap", PLANTED, "--to", "prelu", "--output", str(out)]).exit_code
        == 0
    )
    # A SIGKILL between the two renames: the previous output only under its hidden name.
    stranded = tmp_path / ".out.old.abc123"
    os.replace(out, stranded)
    stale = tmp_path / ".out.zz9.tmp-folder"
    stale.mkdir()
    (stale / "state_dict.pt").write_bytes(b"partial")
    os.utime(stale, (0, 0))
    result = CliRunner().invoke(
        main, ["swap", PLANTED, "--to", "prelu", "--output", str(out), "--force"]
    )
    assert result.exit_code == 0, result.output
    assert out.is_dir() and not stranded.exists() and not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


# -- names that reach a terminal or a pull-request comment ----------------------------


def test_crafted_module_names_are_escaped() -> None:
    evil = "x\x1b[2J\x1b]0;pwned\x07`</code><img src=x>|"
    model = nn.Sequential()
    model.add_module("fc", nn.Linear(2, 2))
    model.add_module(evil, nn.ReLU())
    with torch.no_grad():
        model.fc.bias.fill_(-10.0)
        model.fc.weight.zero_()
    report = deadcheck.scan(model, [torch.randn(3, 2)])
    table = deadcheck.render(report, "table")
    assert "\x1b" not in table and "\x07" not in table and "\\x1b" in table
    markdown = deadcheck.render(report, "markdown")
    assert "\x1b" not in markdown and "\x07" not in markdown
    row = next(line for line in markdown.splitlines() if "\\x1b" in line and "ReLU" in line)
    header = next(line for line in markdown.splitlines() if line.startswith("| site |"))
    # the name is one code span: its fence is longer than any backtick run inside,
    # and the escaped pipe in it does not split the row into one more cell
    assert row.startswith("| ``") and row.count("|") - row.count("\\|") == header.count("|")
    span = row.split("``")[1]  # HTML inside a code span is shown, never rendered
    assert "<img" in span and "``" not in span


def test_markdown_shows_dormant_share_and_no_dead_figures_for_gelu() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 4), nn.ReLU())
    report = deadcheck.scan(model, [torch.randn(8, 3)], activations="all", dormant=0.5)
    markdown = deadcheck.render(report, "markdown")
    assert "dormant %" in markdown
    gelu = next(line for line in markdown.splitlines() if "| GELU |" in line)
    cells = [c.strip() for c in gelu.strip("|").split("|")]
    assert cells[3:6] == ["-", "-", "-"] and cells[7] == "-"  # dead, dead %, linear %, zero %


# -- checkpoints ------------------------------------------------------------------------


def _planted_model() -> nn.Module:
    from deadcheck.workflows.loading import load_target

    return load_target(PLANTED).model


ODD_CHECKPOINTS = [
    ("integer-keys", lambda sd: {i: v for i, v in enumerate(sd.values())}, "not a name"),
    ("meta-tensor", lambda sd: {k: v.to("meta") for k, v in sd.items()}, "meta tensor"),
    ("sparse-tensor", lambda sd: {k: v.to_sparse() for k, v in sd.items()}, "sparse"),
    (
        "quantized-tensor",
        lambda sd: {k: torch.quantize_per_tensor(v, 0.1, 0, torch.qint8) for k, v in sd.items()},
        "quantized",
    ),
    ("complex-tensor", lambda sd: {k: v.to(torch.complex64) for k, v in sd.items()}, "complex"),
]


@pytest.mark.parametrize(
    ("change", "words"), [c[1:] for c in ODD_CHECKPOINTS], ids=[c[0] for c in ODD_CHECKPOINTS]
)
def test_odd_checkpoints_are_one_line(tmp_path: Path, change, words) -> None:
    path = tmp_path / "odd.pt"
    torch.save(change(_planted_model().state_dict()), path)
    result = CliRunner().invoke(main, ["scan", PLANTED, "--weights", str(path)])
    one_line_exit_2(result)
    assert words in result.stderr


def _rss() -> int:
    """This process's resident memory in bytes (Linux), or 0 where it cannot be read."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_a_deflate_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "bomb.pt"
    torch.save(_planted_model().state_dict(), path)
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("bomb/data/99", "w", force_zip64=True) as entry,
    ):
        block = bytes(1 << 20)
        for _ in range(256):  # 256 MiB of zeros, about 250 KB deflated
            entry.write(block)
    assert path.stat().st_size < 4 << 20
    before = _rss()
    result = CliRunner().invoke(main, ["scan", PLANTED, "--weights", str(path)])
    one_line_exit_2(result)
    assert _rss() - before < 64 << 20  # the 256 MiB tensor was never inflated
    assert "claims" in result.stderr and "refused before reading it" in result.stderr


# -- memory: the heatmap and the plot stay bounded -------------------------------------


def _wide_report(sites: int, widest: int) -> deadcheck.Report:
    from deadcheck.analysis.judging import analyze
    from deadcheck.core.sites import SiteId
    from deadcheck.results.stats import SiteStats, Stats

    def site(i: int, units: int) -> SiteStats:
        return SiteStats(
            id=SiteId(module=f"s{i}"),
            kind="ReLU",
            unit_axis=1,
            units=units,
            calls=1,
            positions=2,
            values={
                "zeros": tuple(2 if u % 3 == 0 else u % 2 for u in range(units)),
                "nan": (0,) * units,
            },
        )

    stats = Stats(sites=(site(0, widest), *(site(i, 4) for i in range(1, sites))), samples=2)
    return analyze(stats)


def test_the_heatmap_is_bounded_and_says_what_it_drew() -> None:
    from deadcheck.output.plotting import (
        MAX_HEATMAP_SITES,
        MAX_HEATMAP_UNITS,
        heatmap_note,
        heatmap_rgb,
    )

    report = _wide_report(600, 200_000)
    image = heatmap_rgb(report)
    assert image.shape[1] == MAX_HEATMAP_UNITS and image.shape[0] <= 4 * MAX_HEATMAP_SITES
    note = heatmap_note(report)
    assert note is not None and "first 512 of 600 sites" in note and "bins" in note
    png = deadcheck.output.plotting.plot_report(report)
    assert png.startswith(b"\x89PNG")


# -- full and read-only destinations ----------------------------------------------------


@pytest.fixture
def small_mount(tmp_path: Path):
    """A 64 KiB tmpfs, where this test may mount one (root on Linux), else skipped."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    point = tmp_path / "small"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[:200]}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(small_mount: Path) -> None:
    (small_mount / "filler").write_bytes(b"x" * (60 << 10))
    out = small_mount / "out"
    result = CliRunner().invoke(main, ["swap", PLANTED, "--to", "prelu", "--output", str(out)])
    one_line_exit_2(result)
    assert sorted(p.name for p in small_mount.iterdir()) == ["filler"]


def test_a_read_only_destination_is_refused_before_the_work(small_mount: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    result = CliRunner().invoke(
        main, ["scan", PLANTED, "--format", "json", "-o", str(small_mount / "r.json")]
    )
    one_line_exit_2(result)
    assert "not writable" in result.stderr
    assert "samples" not in result.stdout  # refused before the scan ran


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from([*sorted(deadcheck.repair.swapping._SITE_FIELDS), "explode"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**13), max_value=10**13),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(["", "__class__", "_modules", "training", "forward", "act1", "fc1"]),
        st.text(max_size=6),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_a_stream_of_malformed_plans_leaves_model_and_files_untouched(
    saved_plan, tmp_path_factory, field, value
) -> None:
    folder = tmp_path_factory.mktemp("plan")
    plan = _site(saved_plan, **{field: value})
    path = folder / "plan.json"
    path.write_text(json.dumps(plan, allow_nan=True))
    before = path.read_bytes()
    model = _planted_model()
    state = copy.deepcopy(model.state_dict())
    modules = [type(m) for m in model.modules()]
    try:
        deadcheck.swap(model, plan=SwapPlan.load(path), inplace=True)
    except (SwapError, InputError):
        assert [type(m) for m in model.modules()] == modules
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
        refused = True
    else:
        refused = False
    weights = folder / "w.pt"
    torch.save(_planted_model().state_dict(), weights)
    weights_before = weights.read_bytes()
    result = CliRunner().invoke(
        main, ["scan", PLANTED, "--plan", str(path), "--weights", str(weights)]
    )
    if refused:
        one_line_exit_2(result)
    assert result.exit_code in (0, 2), result.output
    assert path.read_bytes() == before and weights.read_bytes() == weights_before
