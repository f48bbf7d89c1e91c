"""Every example runs with DEADCHECK_QUICK=1 and prints the evidence it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))

# What each example must print: the evidence, not just that it ran.
EXPECTED_OUTPUT = {
    "dying_mlp.py": ["dying-layer", "layers.3"],
    "digits_swap.py": ["dead-layer", "swap flagged to leaky_relu", "prelu from the same start"],
    "slope_sensitivity.py": ["loss@200", "tiny-slope@1", "near-linear-slope@1"],
    "born_dead.py": ["theory", "at one input"],
    "training_monitor.py": ["rising: head.2", "tensorboard --logdir"],
    "torchvision_resnet.py": ["49 sites", "swapped to PReLU: 5 sites", "PReLU, 512 slopes"],
}


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "DEADCHECK_QUICK": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_and_prints_its_evidence(name: str, tmp_path) -> None:
    assert name in EXPECTED_OUTPUT, f"add {name} to EXPECTED_OUTPUT"
    args = [str(tmp_path / "runs")] if name == "training_monitor.py" else []
    out = run_example(name, *args)
    for text in EXPECTED_OUTPUT[name]:
        assert text in out


def test_digits_swap_revives_the_dead_layer() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import digits_swap
    finally:
        sys.path.pop(0)
    start, leaky, prelu, relu_on, *_ = digits_swap.run()
    assert start.dead == (1.0, 1.0)  # the high learning rate killed both ReLU layers
    assert start.report.flagged_sites == ("1", "3")
    assert relu_on.dead == (1.0, 1.0)  # ReLU cannot recover on its own
    for swapped in (leaky, prelu):
        assert swapped.dead[1] < 0.5  # most units of the second layer come back
        assert swapped.accuracy > start.accuracy + 0.5


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


def test_docs_quote_what_the_examples_print() -> None:
    """docs/examples.md quotes these tables; QUICK mode does not change these two examples."""
    docs = (ROOT / "docs" / "examples.md").read_text()
    for name, first_line in [
        ("digits_swap.py", "run  "),
        ("slope_sensitivity.py", "  slope"),
    ]:
        out = run_example(name)
        table = out[out.index(first_line) :].split("\n\n")[0].rstrip("\n")
        assert table in docs, f"docs/examples.md no longer quotes {name}'s output"
