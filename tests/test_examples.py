"""Every example runs with DEADCHECK_QUICK=1 and prints the evidence it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))

# What each example must print: the evidence, not just that it ran.
EXPECTED_OUTPUT = {
    "dying_mlp.py": ["dying-layer", "layers.3"],
    "digits_swap.py": ["dead-layer", "swap flagged to leaky_relu", "prelu from the same start"],
    "slope_sensitivity.py": ["loss@200", "tiny-slope@1", "near-linear-slope@1"],
    "born_dead.py": ["theory", "at one input"],
    "training_monitor.py": ["rising: head.2", "tensorboard --logdir"],
    "torchvision_resnet.py": ["49 sites", "swapped to PReLU: 5 sites", "PReLU, 512 slopes"],
    "continual_digits.py": ["24 tasks", "recycling", "dorm last"],
    "linear_digits.py": ["linear-units", "training predictions unchanged: True"],
}


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "DEADCHECK_QUICK": "1", "PYTHONPATH": str(ROOT)}
    done = _run(name, args, env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _run(name: str, args: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_prints_its_evidence(name: str, tmp_path) -> None:
    assert name in EXPECTED_OUTPUT, f"add {name} to EXPECTED_OUTPUT"
    args = [str(tmp_path / "runs")] if name == "training_monitor.py" else []
    out = run_example(name, *args)
    for text in EXPECTED_OUTPUT[name]:
        assert text in out


def test_digits_swap_revives_the_dead_layer() -> None:
    """The claim, with margins that hold on any CPU (training figures differ between kernels)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import digits_swap
    finally:
        sys.path.pop(0)
    start, leaky, prelu, relu_on, *_ = digits_swap.run()
    assert min(start.dead) >= 0.95  # the high learning rate killed both ReLU layers
    assert start.report.flagged_sites == ("1", "3")
    assert relu_on.dead[0] >= start.dead[0]  # ReLU cannot recover on its own
    assert relu_on.accuracy < 0.3
    for swapped in (leaky, prelu):
        assert swapped.dead[1] < 0.5  # most units of the second layer come back
        assert swapped.accuracy > start.accuracy + 0.5


def test_recycling_keeps_the_continual_learner_learning(monkeypatch) -> None:
    """The claim of continual_digits.py, with margins (QUICK: 24 tasks)."""
    monkeypatch.setenv("DEADCHECK_QUICK", "1")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import continual_digits
    finally:
        sys.path.pop(0)
    plain, recycling = continual_digits.run(False), continual_digits.run(True)

    def last(values: list[float]) -> float:
        return sum(values[-5:]) / 5

    assert len(plain.accuracy) == len(recycling.accuracy) == continual_digits.TASKS
    assert min(plain.accuracy[:3] + recycling.accuracy[:3]) > 0.85  # both learn at first
    assert last(recycling.accuracy) > last(plain.accuracy) + 0.05  # plain loses plasticity
    assert last(plain.dead) > 0.5 and last(recycling.dead) < 0.1
    assert last(recycling.dormant) < last(plain.dormant) - 0.4
    assert recycling.recycled > 0 and plain.recycled == 0


def test_born_dead_matches_the_closed_forms() -> None:
    out = run_example("born_dead.py")
    rows = [line.split() for line in out.splitlines() if line[:6].strip().isdigit()]
    grid = [r for r in rows if len(r) == 6 and r[0] == "1"]
    for _width, depth, relu, theory, _, leaky in grid:
        # 200 nets: a binomial share within 4 standard errors of the exact probability
        assert abs(float(relu) - float(theory)) <= 4 * 0.5 / 200**0.5, (depth, relu, theory)
        assert float(leaky) == 0.0  # a width-1 LeakyReLU chain always has both signs
    single = [r for r in rows if len(r) == 4]
    for width, depth, relu, theory in single:
        assert abs(float(relu) - float(theory)) <= 4 * 0.5 / 200**0.5, (width, depth)


def _table(text: str, first_line: str) -> list[str]:
    """The lines of the table that starts with ``first_line``, up to a blank line or a fence."""
    lines = text[text.index(first_line) :].split("\n\n")[0].rstrip("\n").splitlines()
    return [line for line in lines if not line.startswith("```")]


def _cells(line: str) -> tuple[str, list[float], str]:
    """A row as (label, numbers, the rest), e.g. ("0.3", [1.143, 0.22, 0.07, 95.7], "-")."""
    words = line.split()
    numbers: list[float] = []
    label: list[str] = []
    rest: list[str] = []
    for word in words:
        try:
            value = float(word.rstrip("%"))
        except ValueError:
            (rest if numbers else label).append(word)
            continue
        if rest:
            rest.append(word)
        elif not numbers and not label:
            label.append(word)  # a numeric label: the slope
        else:
            numbers.append(value)
    return " ".join(label), numbers, " ".join(rest)


#: Per example: the table's first line, rows that must match exactly (they do not depend on
#: how a CPU kernel rounds, e.g. a dead layer stays dead), and tolerances for the other rows.
DOCS_TABLES = {
    "digits_swap.py": ("run  ", ("ReLU after", "keep ReLU"), None),
    "slope_sensitivity.py": ("  slope", (), {"loss": 0.02, "acc": 2.0}),
}


def _slope_findings(rest: str) -> set[str]:
    return {f for f in rest.split(", ") if "slope" in f}


@pytest.mark.parametrize("name", sorted(DOCS_TABLES))
def test_docs_quote_what_the_examples_print(name: str, request: pytest.FixtureRequest) -> None:
    """docs/examples.md quotes these tables (``pytest --update-golden`` requotes them).

    Training figures differ between CPU kernels (AVX2 and AVX-512 round
    differently), so rows that hinge on them are compared by label, or within
    a tolerance; rows that are exact by construction are compared exactly.
    """
    docs_path = ROOT / "docs" / "examples.md"
    docs = docs_path.read_text()
    first_line, exact, tolerance = DOCS_TABLES[name]
    out = run_example(name)
    printed = _table(out, first_line)
    if request.config.getoption("--update-golden"):
        quoted = "\n".join(_table(docs, first_line))
        docs_path.write_text(docs.replace(quoted, "\n".join(printed)))
        return
    quoted_lines = _table(docs, first_line)
    assert quoted_lines[0] == printed[0], f"docs/examples.md quotes another header for {name}"
    assert len(quoted_lines) == len(printed)
    for quoted, line in zip(quoted_lines[1:], printed[1:], strict=True):
        label, numbers, rest = _cells(line)
        q_label, q_numbers, q_rest = _cells(quoted)
        assert label == q_label, (name, quoted, line)
        if any(line.strip().startswith(e) for e in exact):
            assert line == quoted, f"{name}: this row is exact on every CPU:\n{quoted}\n{line}"
        if tolerance is not None:
            *losses, acc = numbers
            *q_losses, q_acc = q_numbers
            assert all(
                abs(a - b) <= tolerance["loss"] for a, b in zip(losses, q_losses, strict=True)
            ), line
            assert abs(acc - q_acc) <= tolerance["acc"], line
            assert _slope_findings(rest) == _slope_findings(q_rest), line


def test_an_example_without_scikit_learn_names_the_extra(tmp_path) -> None:
    """A missing scikit-learn gets one line naming the extra, not a traceback."""
    stub = tmp_path / "sklearn"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('No module named sklearn')\n")
    env = {**os.environ, "DEADCHECK_QUICK": "1", "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    done = _run("digits_swap.py", (), env)
    assert done.returncode == 1
    assert done.stderr.strip() == 'this example needs scikit-learn: pip install -e ".[examples]"'


def test_units_linear_on_the_data_are_replaced_by_their_linear_map() -> None:
    """The claim of linear_digits.py, with margins that hold on any CPU."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import linear_digits
    finally:
        sys.path.pop(0)
    result = linear_digits.run()
    assert result["linear"] >= 0.05  # some units never crossed their kink
    assert result["same"] == 1.0  # on the data they were judged on, nothing changes
    assert abs(result["after"] - result["before"]) <= 0.01
