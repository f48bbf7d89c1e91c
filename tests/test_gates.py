"""No gate passes by accident: the user's code never decides deadcheck's exit status (issue 22)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from deadcheck.cli import main
from deadcheck.core.errors import EXIT_INTERRUPTED, EXIT_MODEL

HEAD = "import sys\nimport torch\nfrom torch import nn\n"

#: Model files whose code leaves in one place or another, with the place deadcheck names.
LEAVING = [
    ("sys.exit-at-import", HEAD + "sys.exit(0)\nmodel = nn.Sequential(nn.Linear(2, 2))\n"),
    (
        "sys.exit-in-the-builder",
        HEAD + "def model():\n    sys.exit(0)\n",
    ),
    (
        "sys.exit-in-forward",
        HEAD + "class M(nn.Module):\n    def forward(self, x):\n        sys.exit(0)\n"
        "model = M()\nexample_input = torch.ones(2, 2)\n",
    ),
    (
        "sys.exit-in-batches",
        HEAD + "model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())\n"
        "def batches():\n    sys.exit(0)\n",
    ),
    (
        "sys.exit-while-yielding-batches",
        HEAD + "model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())\n"
        "def batches():\n    yield torch.ones(2, 2)\n    sys.exit(0)\n",
    ),
    (
        "custom-base-exception-in-forward",
        HEAD + "class Stop(BaseException):\n    pass\n"
        "class M(nn.Module):\n    def forward(self, x):\n        raise Stop('no')\n"
        "model = M()\nexample_input = torch.ones(2, 2)\n",
    ),
    (
        "generator-exit-in-forward",
        HEAD + "class M(nn.Module):\n    def forward(self, x):\n        raise GeneratorExit\n"
        "model = M()\nexample_input = torch.ones(2, 2)\n",
    ),
]


@pytest.mark.parametrize("source", [c[1] for c in LEAVING], ids=[c[0] for c in LEAVING])
def test_code_that_exits_is_the_model_failing(tmp_path: Path, source: str) -> None:
    target = tmp_path / "leaves.py"
    target.write_text(source)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["scan", str(target), "--fail-on", "warning", "-o", str(out)])
    assert result.exit_code == EXIT_MODEL, result.output
    assert "your code raised an error" in result.stderr
    assert "Traceback (most recent call last)" not in result.stderr.split("follows)")[0]
    assert not out.exists()


def test_the_target_sys_exit_is_the_model_failing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scan", "sys:exit", "--fail-on", "warning"])
    assert result.exit_code == EXIT_MODEL, result.output


def test_a_builder_that_raises_type_error_shows_its_own_traceback(tmp_path: Path) -> None:
    target = tmp_path / "builder.py"
    target.write_text(HEAD + "def model():\n    return nn.Linear('two', 2)\n")
    result = CliRunner().invoke(main, ["scan", str(target)])
    assert result.exit_code == EXIT_MODEL
    assert "zero arguments" not in result.stderr and "TypeError" in result.stderr


def test_a_builder_that_needs_arguments_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "builder.py"
    target.write_text(HEAD + "def model(width):\n    return nn.Linear(width, 2)\n")
    result = CliRunner().invoke(main, ["scan", str(target)])
    assert result.exit_code == 2
    assert "zero arguments" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_during_the_first_batch_fails_the_gate(tmp_path: Path) -> None:
    target = tmp_path / "interrupted.py"
    target.write_text(
        HEAD + "class M(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.fc = nn.Linear(2, 2)\n"
        "    def forward(self, x):\n        raise KeyboardInterrupt\n"
        "model = M()\nexample_input = torch.ones(2, 2)\n"
    )
    result = CliRunner().invoke(main, ["scan", str(target), "--fail-on", "warning"])
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    assert "partial scan cannot pass --fail-on" in result.stderr
    plain = CliRunner().invoke(main, ["scan", str(target)])
    assert plain.exit_code == 0 and "(partial: interrupted)" in plain.stdout


def test_a_model_that_prints_leaves_json_on_stdout_intact(tmp_path: Path) -> None:
    target = tmp_path / "chatty.py"
    target.write_text(
        HEAD + "print('importing the model')\n"
        "class M(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.fc = nn.Linear(2, 3)\n"
        "    def forward(self, x):\n        print('forward!')\n"
        "        return torch.relu(self.fc(x))\n"
        "model = M()\n"
        "def batches():\n    print('batches!')\n    yield torch.ones(4, 2)\n"
    )
    result = CliRunner().invoke(main, ["scan", str(target), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["samples"] == 4
    assert "forward!" in result.stderr and "batches!" in result.stderr


PLANTED = str(Path(__file__).resolve().parent / "targets" / "planted.py")

MISTAKES = [
    ("batch-axis-out-of-range", [PLANTED, "--batch-axis", "99"]),
    ("input-shape-too-big", [PLANTED, "--input-shape", "100000,100000,100000"]),
    ("device-meta", [PLANTED, "--device", "meta"]),
    ("device-xpu", [PLANTED, "--device", "xpu"]),
    ("seed-too-big", [PLANTED, "--seed", "99999999999999999999999"]),
    ("target-colon", [":"]),
]


@pytest.mark.parametrize("args", [m[1] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_usage_mistakes_are_one_line_and_exit_2(args) -> None:
    result = CliRunner().invoke(main, ["scan", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.count("deadcheck: error") == 1


@pytest.mark.parametrize("returned", ["5", "None"])
def test_batches_that_are_not_iterable_are_one_line(tmp_path: Path, returned: str) -> None:
    target = tmp_path / "bad_batches.py"
    target.write_text(
        HEAD + "model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())\n"
        f"def batches():\n    return {returned}\n"
    )
    result = CliRunner().invoke(main, ["scan", str(target)])
    assert result.exit_code == 2, result.output
    assert "not an iterable" in result.stderr and "Traceback" not in result.output
