"""The command line: golden outputs and the contract's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from deadcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
T = "tests/targets"


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


class Custom:
    """Saving an instance makes a checkpoint that only full unpickling can load."""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


GOLDEN = [
    ("planted.table.txt", ["scan", f"{T}/planted.py"]),
    ("planted.all.txt", ["scan", f"{T}/planted.py", "--all"]),
    ("planted.json", ["scan", f"{T}/planted.py", "--format", "json"]),
    ("planted.md", ["scan", f"{T}/planted.py", "--format", "markdown"]),
    ("planted.dying-0.75.txt", ["scan", f"{T}/planted.py", "--dying", "0.75"]),
    ("no_relu.txt", ["scan", f"{T}/no_relu.py"]),
    ("structured.txt", ["scan", f"{T}/structured.py"]),
]


@pytest.mark.parametrize(("name", "args"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_output(name: str, args: list[str], golden) -> None:
    code, out, err = run(*args)
    assert code == 0, err
    golden(name, out)


def test_json_stdout_is_json_alone_with_exact_counts() -> None:
    code, out, _ = run("scan", f"{T}/planted.py", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["samples"] == 8
    sites = {s["name"]: s for s in data["sites"]}
    assert sites["act1"]["zero_fraction"] == [0.5, 0.5, 1.0, 1.0]
    assert sites["act1"]["dead_units"] == [2, 3]
    assert sites["act2"]["dead_fraction"] == 1.0
    assert sites["act3"]["slope"] == pytest.approx(0.9)
    codes = [(f["code"], f["site"]) for f in data["findings"]]
    assert codes == [
        ("dying-layer", "act1"),
        ("dead-layer", "act2"),
        ("linear-units", "act3"),  # its input is 0.5 at every position
        ("near-linear-slope", "act3"),
    ]


EXIT_CODES = [
    ("fail-on-error", ["scan", f"{T}/planted.py", "--fail-on", "error"], 1, ""),
    ("fail-on-warning", ["scan", f"{T}/planted.py", "--fail-on", "warning"], 1, ""),
    ("no-findings-pass", ["scan", f"{T}/no_relu.py", "--fail-on", "info"], 2, "Invalid value"),
    ("missing-file", ["scan", f"{T}/nope.py"], 2, "no such file"),
    ("unknown-target", ["scan", "nope"], 2, "no such target"),
    ("syntax-error", ["scan", f"{T}/syntax_error.py"], 2, "syntax error"),
    ("import-error", ["scan", f"{T}/import_error.py"], 2, "ModuleNotFoundError"),
    ("no-model", ["scan", f"{T}/no_model.py"], 2, "defines no 'model'"),
    ("not-a-module", ["scan", f"{T}/not_module.py"], 2, "not an nn.Module"),
    ("no-inputs", ["scan", f"{T}/no_inputs.py"], 2, "--input-shape"),
    ("empty-batches", ["scan", f"{T}/empty_batches.py"], 2, "no batches"),
    ("bad-shape", ["scan", f"{T}/no_inputs.py", "--input-shape", "2,x"], 2, "--input-shape"),
    ("zero-shape", ["scan", f"{T}/no_inputs.py", "--input-shape", "2,0"], 2, "positive"),
    (
        "zero-batches",
        ["scan", f"{T}/no_inputs.py", "--input-shape", "2,3", "--batches", "0"],
        2,
        "--batches",
    ),
    ("bad-format", ["scan", f"{T}/planted.py", "--format", "xml"], 2, "Invalid value"),
    ("bad-device", ["scan", f"{T}/planted.py", "--device", "toaster"], 2, "--device"),
    ("bad-unit-axis", ["scan", f"{T}/planted.py", "--unit-axis", "act1"], 2, "SITE=AXIS"),
    ("bad-threshold", ["scan", f"{T}/planted.py", "--dying", "2"], 2, "dying"),
    ("model-raises", ["scan", f"{T}/raising.py"], 3, "shapes do not line up"),
    ("unknown-torchvision", ["scan", "torchvision:resnet999"], 2, "did you mean"),
    ("random-inputs", ["scan", f"{T}/no_inputs.py", "--input-shape", "4,3"], 0, ""),
    # A newcomer's usual mistakes: each one line, exit 2, naming the cause and the fix.
    (
        "narrow-checkpoint",
        ["scan", f"{T}/wide_mlp.py", "--weights", "{narrow}"],
        2,
        "0.weight is (64, 4) in the file but (128, 4) in the model",
    ),
    (
        "narrow-checkpoint-swap",
        ["swap", f"{T}/wide_mlp.py", "--weights", "{narrow}", "--to", "prelu", "-o", "{out}"],
        2,
        "0.weight is (64, 4) in the file but (128, 4) in the model",
    ),
    (
        "text-checkpoint",
        ["scan", f"{T}/planted.py", "--weights", "{junk}"],
        2,
        "is text, not a torch checkpoint",
    ),
    (
        "empty-checkpoint",
        ["scan", f"{T}/planted.py", "--weights", "{empty}"],
        2,
        "is empty, not a torch checkpoint",
    ),
    (
        "python-as-checkpoint",
        ["scan", f"{T}/planted.py", "--weights", f"{T}/planted.py"],
        2,
        "is Python source, not a torch checkpoint",
    ),
    (
        "python-as-checkpoint-unsafe",
        ["scan", f"{T}/planted.py", "--weights", f"{T}/planted.py", "--unsafe-pickle"],
        2,
        "is Python source, not a torch checkpoint",
    ),
    (
        "unit-axis-unknown-site",
        ["scan", f"{T}/planted.py", "--unit-axis", "nosuch=1"],
        2,
        "no site is called that; sites are: act1, act2, act3",
    ),
    (
        "unit-axis-out-of-range",
        ["scan", f"{T}/planted.py", "--unit-axis", "act2=5"],
        2,
        "the unit axis 5 given for act2 is out of range for a rank-2 activation",
    ),
    ("torchscript", ["scan", f"{T}/scripted.py"], 2, "TorchScript"),
    (
        "threshold-named",
        ["scan", f"{T}/planted.py", "--dying", "50"],
        2,
        "--dying must be in (0, 1]",
    ),
    (
        "bad-format-choices",
        ["scan", f"{T}/planted.py", "--format", "yaml"],
        2,
        "'yaml' is not one of 'table', 'json', 'markdown'",
    ),
    (
        "bad-fail-on",
        ["scan", f"{T}/planted.py", "--fail-on", "warnings"],
        2,
        "'warnings' is not one of 'warning', 'error'",
    ),
    (
        "bad-swap-to",
        ["swap", f"{T}/planted.py", "--to", "leaky", "-o", "{out}"],
        2,
        "'leaky' is not one of 'leaky_relu', 'prelu'",
    ),
    (
        "net-not-model",
        ["scan", f"{T}/net_only.py"],
        2,
        "did you mean tests/targets/net_only.py:net?",
    ),
    (
        "plot-suffix",
        ["scan", f"{T}/planted.py", "--plot", "{out}.tiff"],
        2,
        ".jpg, .pdf, .png, .svg",
    ),
]


@pytest.mark.parametrize(
    ("args", "code", "text"), [e[1:] for e in EXIT_CODES], ids=[e[0] for e in EXIT_CODES]
)
def test_exit_codes(args: list[str], code: int, text: str, mistakes: dict[str, str]) -> None:
    got, _, err = run(*(arg.format(**mistakes) for arg in args))
    assert got == code, err
    assert text in err
    if code == 2:
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err  # the documented one line


@pytest.fixture
def mistakes(tmp_path: Path) -> dict[str, str]:
    """Files a newcomer passes by mistake: a checkpoint of another width, text, nothing."""
    import torch
    from torch import nn

    narrow = tmp_path / "narrow.pt"
    torch.save(nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2)).state_dict(), narrow)
    (tmp_path / "junk.pt").write_text("hello\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    return {
        "narrow": str(narrow),
        "junk": str(tmp_path / "junk.pt"),
        "empty": str(tmp_path / "empty.pt"),
        "out": str(tmp_path / "out"),
    }


def test_shape_and_dtype_mistakes_get_a_hint_naming_where_inputs_came_from() -> None:
    code, _, err = run("scan", f"{T}/planted.py", "--input-shape", "2,5")
    assert code == 3
    assert "hint: the inputs are random tensors of shape 2,5 from --input-shape" in err
    code, _, err = run("scan", f"{T}/wide_mlp.py")
    assert code == 3
    assert "hint: the batch is float64 and the model's parameters are float32" in err
    assert "the batches come from tests/targets/wide_mlp.py" in err


def test_more_batches_asked_than_given_is_said() -> None:
    code, _, err = run("scan", f"{T}/planted.py", "--batches", "100")
    assert code == 0
    assert err.strip() == (
        "deadcheck: note: --batches 100 asked for more than tests/targets/planted.py gives: fed 2"
    )


def test_an_uncounted_site_makes_the_report_incomplete_and_fails(monkeypatch) -> None:
    """A site that cannot be counted is never dropped silently."""
    from deadcheck.recording import counting

    real = counting.SiteCounter.create

    def refuse_act2(call, x, **kwargs):
        if x.shape[-1] == 2:  # act2, the only site with two units
            raise ValueError("cannot count this one")
        return real(call, x, **kwargs)

    monkeypatch.setattr(counting.SiteCounter, "create", refuse_act2)
    code, out, _ = run("scan", f"{T}/planted.py", "--format", "json", "--fail-on", "error")
    data = json.loads(out)
    assert code == 1 and data["incomplete"] is True
    assert [f["site"] for f in data["findings"] if f["code"] == "uncounted-site"] == ["act2"]
    code, out, _ = run("scan", f"{T}/planted.py")
    assert "(incomplete: 1 site not counted)" in out.splitlines()[0]
    assert "uncounted-site    act2" in out


@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_package_targets_load_from_the_working_directory(how: str) -> None:
    """`deadcheck scan mypkg.models:model` works from the folder holding mypkg, as python -m."""
    script = Path(sys.executable).parent / "deadcheck"
    cmd = [str(script)] if how == "console-script" else [sys.executable, "-m", "deadcheck"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [*cmd, "scan", "mypkg.models:model"],
        capture_output=True,
        text=True,
        cwd=ROOT / T,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mypkg.models:model: 2 samples, 1 site")


def test_model_error_shows_users_traceback_marked_as_theirs() -> None:
    _, _, err = run("scan", f"{T}/raising.py")
    assert "your code raised an error while forward pass on batch 0" in err
    assert "raising.py" in err and "in helper" in err
    assert "deadcheck/scanning.py" not in err  # our frames are not the user's concern


def test_input_label_batches_feed_their_inputs_and_say_so_once() -> None:
    code, out, err = run("scan", f"{T}/labelled.py", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["samples"] == 4
    assert err.count("batches are (inputs, labels) pairs and the model takes one input") == 1


def test_no_cuda_here_is_a_clear_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run("scan", f"{T}/planted.py", "--device", "cuda")
    assert code == 2 and "no CUDA device" in err


def test_output_file_is_written_and_never_overwritten_without_force(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code, stdout, _ = run("scan", f"{T}/planted.py", "--format", "json", "-o", str(out))
    assert code == 0 and stdout == ""
    assert json.loads(out.read_text())["schema"] == "deadcheck.report/1"
    out.write_text("precious")
    code, _, err = run("scan", f"{T}/planted.py", "-o", str(out))
    assert code == 2 and "--force" in err
    assert out.read_text() == "precious"
    code, _, _ = run("scan", f"{T}/planted.py", "-o", str(out), "--force")
    assert code == 0 and out.read_text().startswith(f"{T}/planted.py")


def test_weights_are_loaded_with_weights_only(tmp_path: Path) -> None:
    import torch

    sys.path.insert(0, str(ROOT / T))
    try:
        from planted import Planted
    finally:
        sys.path.pop(0)
    model = Planted()
    with torch.no_grad():
        model.hidden.bias.fill_(100.0)  # revive the dead layer
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    code, out, _ = run("scan", f"{T}/planted.py", "--weights", str(good), "--format", "json")
    assert code == 0
    assert json.loads(out)["sites"][1]["dead_units"] == []

    wrong = tmp_path / "wrong.pt"
    torch.save({"encoder.weight": torch.zeros(4, 1), "extra": torch.zeros(1)}, wrong)
    code, _, err = run("scan", f"{T}/planted.py", "--weights", str(wrong))
    assert (
        code == 2 and "missing (first: encoder.bias)" in err and "unexpected (first: extra)" in err
    )

    pickled = tmp_path / "pickled.pt"
    torch.save({"state": Custom()}, pickled)
    code, _, err = run("scan", f"{T}/planted.py", "--weights", str(pickled))
    assert code == 2 and "--unsafe-pickle" in err


def test_table_prints_every_site_name_whole_for_121_sites() -> None:
    """Names are identifiers to paste into --sites and --unit-axis: the column widens, no cut."""
    args = ["torchvision:densenet121", "--input-shape", "1,3,32,32", "--batches", "1"]
    code, out, _ = run("scan", *args, "--all")
    assert code == 0
    lines = out.splitlines()
    assert "121 sites" in lines[0] and "…" not in out
    rows = [line.split()[0] for line in lines if " ReLU " in line]
    _, data, _ = run("scan", *args, "--format", "json")
    assert rows == [site["name"] for site in json.loads(data)["sites"]]
    longest = max(len(name) for name in rows)
    assert longest > 33  # so the column had to widen
    # One aligned column, as wide as the longest name.
    assert {line.index(" ReLU ") for line in lines if " ReLU " in line} == {longest}


def test_console_script_and_module_entry_points() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = Path(sys.executable).parent / "deadcheck"  # the one installed beside this Python
    for cmd in ([str(script)], [sys.executable, "-m", "deadcheck"]):
        done = subprocess.run(
            [*cmd, "scan", f"{T}/planted.py", "--fail-on", "error"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert "dead-layer" in done.stdout


def test_help_does_not_import_torch() -> None:
    code = "import sys; from deadcheck.cli import main; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_readme_excerpt_is_the_real_output() -> None:
    code, out, _ = run("scan", "examples/dying_mlp.py")
    readme = (ROOT / "README.md").read_text()
    assert code == 0
    assert f"```text\n{out}```" in readme


def test_a_swapped_checkpoint_scans_with_its_plan(tmp_path) -> None:
    """swap writes a plan and weights; scan --plan --weights reads them back, no wrapper file."""
    out = tmp_path / "swapped"
    code, stdout, err = run("swap", f"{T}/planted.py", "--to", "prelu", "--output", f"{out}/")
    assert code == 0, err
    assert f"{out}//" not in stdout and f"{out}/swap_plan.json" in stdout
    assert f"--plan {out}/swap_plan.json --weights {out}/state_dict.pt" in stdout
    code, stdout, err = run(
        "scan",
        f"{T}/planted.py",
        "--plan",
        str(out / "swap_plan.json"),
        "--weights",
        str(out / "state_dict.pt"),
        "--format",
        "json",
    )
    assert code == 0, err
    kinds = {s["name"]: s["kind"] for s in json.loads(stdout)["sites"]}
    assert kinds == {"act1": "PReLU", "act2": "PReLU", "act3": "LeakyReLU"}
    code, _, err = run("scan", f"{T}/planted.py", "--weights", str(out / "state_dict.pt"))
    assert code == 2 and "does not fit the model" in err  # without the plan the keys differ


@pytest.mark.parametrize(
    ("content", "why"),
    [("{not json", "is not a repair plan"), ('{"schema": "other"}', "not a swap plan")],
    ids=["not-json", "other-schema"],
)
def test_a_bad_plan_is_one_line(tmp_path, content: str, why: str) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content)
    code, _, err = run("scan", f"{T}/planted.py", "--plan", str(plan))
    assert code == 2 and why in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_recycle_writes_weights_and_a_record_and_the_dead_units_fire_again(tmp_path) -> None:
    out = tmp_path / "recycled"
    code, stdout, err = run("recycle", f"{T}/planted.py", "--output", str(out))
    assert code == 0, err
    record = json.loads((out / "recycled.json").read_text())
    assert record["recycled"] == {"act1": [2, 3], "act2": [0, 1]}
    assert record["skipped"] == {}  # act3, one unit, is its own average: not dormant
    assert "deadcheck recycled 4 unit(s) at 2 site(s)" in stdout
    code, stdout, _ = run(
        "scan", f"{T}/planted.py", "--weights", str(out / "state_dict.pt"), "--format", "json"
    )
    sites = {s["name"]: s for s in json.loads(stdout)["sites"]}
    # Fresh rows from the layers' own random initialisation: most recycled units fire again
    # (which ones is up to that draw); before, all four were dead.
    assert len(sites["act1"]["dead_units"]) + len(sites["act2"]["dead_units"]) <= 1
    for bad in (["--dormant", "2"], ["--tau", "2"], ["--tau", "0.2", "--dormant", "0.3"]):
        code, _, err = run("recycle", f"{T}/planted.py", "--output", str(out), *bad)
        assert code == 2 and len(err.strip().splitlines()) == 1, (bad, err)


def test_recycle_finds_dormant_units_in_any_activation_unasked(tmp_path: Path) -> None:
    out = tmp_path / "recycled"
    code, stdout, err = run("recycle", f"{T}/gelu_dormant.py", "--output", str(out))
    assert code == 0, err
    record = json.loads((out / "recycled.json").read_text())
    assert record["recycled"] == {"act": [2, 3]} and record["tau"] == 0.1
    assert "deadcheck recycled 2 unit(s) at 1 site(s)" in stdout
    # Asked for the ReLU family only, there is no site: one line, exit 2.
    code, _, err = run(
        "recycle", f"{T}/gelu_dormant.py", "--activations", "relu", "--output", str(out), "--force"
    )
    assert code == 2 and "no activation site was recorded" in err
    assert len(err.strip().splitlines()) == 1


R = f"{T}/reports"
GATE = ["--fail-on-rise", "0.05"]
DIFFS = [
    ("diff.table.txt", ["diff", f"{R}/before.json", f"{R}/after.json", *GATE], 1),
    # A pull-request comment: shows what changed, and gates only when asked.
    ("diff.md", ["diff", f"{R}/before.json", f"{R}/after.json", "--format", "markdown"], 0),
    ("diff.json", ["diff", f"{R}/before.json", f"{R}/after.json", "--format", "json", *GATE], 1),
]


@pytest.mark.parametrize(("name", "args", "code"), DIFFS, ids=[d[0] for d in DIFFS])
def test_diff_golden_output(name: str, args: list[str], code: int, golden) -> None:
    got, out, err = run(*args)
    assert got == code, err
    golden(name, out)


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ([], 0),  # act1 rose 50 points, but no gate was asked
        (["--fail-on-rise", "0.05"], 1),
        (["--fail-on-rise", "0.5"], 0),  # exactly the bound: not above it
        (["--fail-on-rise", "0.49"], 1),
        (["--fail-on-rise", "0.5", "--fail-on", "error"], 1),  # the new dead-layer error
        (["--fail-on-rise", "0.5", "--fail-on", "warning"], 1),
    ],
    ids=["no-gate", "above-bound", "at-bound", "below-bound", "new-error", "new-warning"],
)
def test_diff_exit_codes(extra: list[str], code: int) -> None:
    got, _, err = run("diff", f"{R}/before.json", f"{R}/after.json", *extra)
    assert got == code, err


def test_diff_reads_one_report_from_stdin() -> None:
    text = (ROOT / R / "before.json").read_text()
    result = CliRunner().invoke(
        main, ["diff", "-", f"{R}/after.json", *GATE, "--format", "json"], input=text
    )
    assert result.exit_code == 1, result.stderr
    assert json.loads(result.stdout)["old"] == "-"
    both = CliRunner().invoke(main, ["diff", "-", "-"], input=text)
    assert both.exit_code == 2 and "only one of OLD and NEW" in both.stderr


def test_diff_of_a_report_with_itself_passes() -> None:
    code, out, _ = run("diff", f"{R}/before.json", f"{R}/before.json", "--fail-on", "warning")
    assert code == 0 and "no change" in out


def test_diff_of_two_different_models_lists_sites_that_came_and_went(tmp_path) -> None:
    code, out, _ = run("scan", f"{T}/structured.py", "--format", "json")
    assert code == 0
    other = tmp_path / "other.json"
    other.write_text(out)
    code, out, _ = run("diff", f"{R}/before.json", str(other), "--format", "json")
    data = json.loads(out)
    before = [s["name"] for s in json.loads((ROOT / R / "before.json").read_text())["sites"]]
    after = [s["name"] for s in json.loads(other.read_text())["sites"]]
    assert data["disappeared"] == [n for n in before if n not in after]
    assert data["appeared"] == [n for n in after if n not in before]
    assert code == (1 if data["rises"] else 0)


def test_diff_refuses_what_is_not_a_report(tmp_path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"schema": "deadcheck.swap-plan/1"}')
    code, _, err = run("diff", str(junk), f"{R}/before.json")
    assert code == 2 and "is not a deadcheck report" in err and len(err.splitlines()) == 1


def test_quiet_prints_nothing_but_the_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, stdout, err = run("scan", f"{T}/planted.py", "-o", str(out), "--quiet")
    assert code == 0 and err == "" and stdout == ""
    code, _, err = run("scan", f"{T}/planted.py", "-o", str(out), "--force")
    assert code == 0 and "deadcheck: wrote" in err
    code, _, err = run("prune", f"{T}/planted.py", "-o", str(tmp_path / "p"), "-q")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    ("total", "done", "elapsed", "line"),
    [
        (None, 3, 1.5, "deadcheck: batch 3, 2 batch/s"),
        (10, 4, 2.0, "deadcheck: batch 4/10, 2 batch/s, 3s left"),
        (10, 10, 2.0, "deadcheck: batch 10/10, 5 batch/s"),
        (10, 0, 0.0, "deadcheck: batch 0/10"),
    ],
    ids=["no-total", "total-and-time-left", "done", "start"],
)
def test_the_progress_line_gives_rate_and_time_left(total, done, elapsed, line) -> None:
    from deadcheck.core.progress import ProgressLine

    assert ProgressLine(total).line(done, elapsed) == line


def test_pyproject_tool_deadcheck_sets_defaults_and_the_command_line_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "theirs"\n\n[tool.deadcheck]\ndying = 0.75\nfail-on = "warning"\n'
    )
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # found from the working directory up
    target = str(ROOT / T / "planted.py")
    code, out, _ = run("scan", target, "--format", "json")
    assert code == 1  # fail-on warning, from the file
    assert json.loads(out)["thresholds"]["dying"] == 0.75
    code, out, _ = run("scan", target, "--format", "json", "--dying", "0.5", "--fail-on", "error")
    assert code == 1 and json.loads(out)["thresholds"]["dying"] == 0.5
    (tmp_path / "pyproject.toml").write_text("[tool.deadcheck]\ndyin = 0.75\n")
    code, _, err = run("scan", target)
    assert code == 2 and "'dyin', which is no deadcheck option" in err
    assert len(err.strip().splitlines()) == 1
