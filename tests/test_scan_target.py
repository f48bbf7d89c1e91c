"""scan_target: everything `deadcheck scan TARGET` does, one call away in Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import deadcheck
from deadcheck.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLANTED = str(ROOT / "tests" / "targets" / "planted.py")


def test_scan_target_gives_the_report_the_command_line_prints() -> None:
    done = deadcheck.scan_target(PLANTED)
    cli = CliRunner().invoke(main, ["scan", PLANTED, "--format", "json"])
    assert json.loads(cli.stdout) == done.report.to_dict()
    assert (done.fed, done.asked, done.input_shape) == (2, None, None)
    assert done.target.name == PLANTED


def test_scan_target_checks_every_argument_before_loading(monkeypatch) -> None:
    def must_not_load(spec: str):
        raise AssertionError("loaded before the arguments were checked")

    monkeypatch.setattr("deadcheck.workflows.loading.load_target", must_not_load)
    for kwargs, option in [
        ({"batches": 0}, "batches"),
        ({"input_shape": "2,x"}, "input_shape"),
        ({"device": "toaster"}, "device"),
        ({"thresholds": None, "batches": -1}, "batches"),
    ]:
        with pytest.raises(deadcheck.InputError) as caught:
            deadcheck.scan_target(PLANTED, **kwargs)
        assert caught.value.option == option
        assert str(caught.value).startswith(option)  # Python's spelling; the CLI shows a flag
    with pytest.raises(deadcheck.InputError, match="dying must be in"):
        deadcheck.scan_target(PLANTED, thresholds=deadcheck.Thresholds(dying=2))


def test_scan_target_counts_the_batches_it_fed() -> None:
    done = deadcheck.scan_target(PLANTED, batches=5)
    assert (done.fed, done.asked) == (2, 5)
