"""units.py (which axis holds the units) and files.py (writes that never lose a file), directly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from torch import nn

from deadcheck.core.errors import InputError
from deadcheck.core.files import (
    MARKER,
    check_folder_writable,
    check_writable,
    write_bytes_atomic,
    write_folder_atomic,
    write_text_atomic,
)
from deadcheck.recording.units import layout_of, resolve_axis

LAYOUTS = {
    "conv1d": (nn.Conv1d(1, 1, 1), "channel"),
    "conv3d": (nn.Conv3d(1, 1, 1), "channel"),
    "batchnorm2d": (nn.BatchNorm2d(2), "channel"),
    "groupnorm": (nn.GroupNorm(1, 2), "channel"),
    "maxpool2d": (nn.MaxPool2d(2), "channel"),
    "upsample": (nn.Upsample(scale_factor=2), "channel"),
    "linear": (nn.Linear(2, 2), "feature"),
    "layernorm": (nn.LayerNorm(2), "feature"),
    "embedding": (nn.Embedding(3, 2), "feature"),
    "lstm": (nn.LSTM(2, 2), "feature"),
    "relu": (nn.ReLU(), None),
    "dropout": (nn.Dropout(), None),
    "identity": (nn.Identity(), None),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_of(name: str) -> None:
    module, layout = LAYOUTS[name]
    assert layout_of(module) == layout


AXES = [
    # (rank, layout, axis)
    (1, None, 0),
    (1, "feature", 0),
    (2, None, 1),
    (2, "channel", 1),
    (3, None, 2),
    (3, "channel", 1),
    (3, "feature", 2),
    (4, None, 1),
    (4, "feature", 3),
    (5, None, 1),
    (5, "channel", 1),
]


@pytest.mark.parametrize(("ndim", "layout", "axis"), AXES, ids=[f"{n}-{lay}" for n, lay, _ in AXES])
def test_resolve_axis(ndim: int, layout, axis: int) -> None:
    assert resolve_axis(ndim, layout) == axis


def test_check_writable_refuses_what_would_lose_a_file(tmp_path: Path) -> None:
    existing = tmp_path / "report.json"
    existing.write_text("keep me")
    with pytest.raises(InputError, match="exists; pass --force"):
        check_writable(existing)
    assert check_writable(existing, force=True) == existing
    with pytest.raises(InputError, match="is a folder"):
        check_writable(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        check_writable(tmp_path / "nope" / "x.json")
    assert existing.read_text() == "keep me"


def test_atomic_writes_replace_whole_files_with_the_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    write_text_atomic(path, "one")
    assert path.read_text() == "one"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    write_bytes_atomic(path, b"two", force=True)
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(InputError, match=r"cannot write .*disk full"):  # one line, exit 2
        write_text_atomic(path, "new", force=True)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_folders_are_written_whole_and_replaced_only_with_force(tmp_path: Path) -> None:
    folder = tmp_path / "swapped"
    write_folder_atomic(folder, {"a.txt": b"1", "b.txt": b"2"})
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MARKER}
    assert files == {"a.txt": b"1", "b.txt": b"2"} and (folder / MARKER).exists()
    with pytest.raises(InputError, match="exists; pass --force"):
        check_folder_writable(folder)
    write_folder_atomic(folder, {"c.txt": b"3"}, force=True)
    assert sorted(p.name for p in folder.iterdir()) == sorted([MARKER, "c.txt"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swapped"]  # no staging left
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        check_folder_writable(tmp_path / "file", force=True)
