"""Every picture in docs/images is made by a command the docs name, and the quick ones run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def _maker():
    spec = importlib.util.spec_from_file_location("make_images", IMAGES / "make.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_picture_has_a_command_and_a_line_in_the_readme() -> None:
    pictures = sorted(p.stem for p in IMAGES.glob("*.png"))
    assert pictures == sorted(_maker().IMAGES)
    listed = (IMAGES / "README.md").read_text()
    assert all(f"`{name}.png`" in listed for name in pictures)


@pytest.mark.parametrize("name", ["dying_mlp", "training_dead_share"])
def test_a_picture_is_made_by_its_command(name: str, tmp_path: Path) -> None:
    _maker().main([name, "--out", str(tmp_path)])
    data = (tmp_path / f"{name}.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
