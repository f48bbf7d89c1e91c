"""The public surface: one list of exports, and docs/api.md naming each with its signature."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import deadcheck

ROOT = Path(__file__).resolve().parent.parent
API_DOC = (ROOT / "docs" / "api.md").read_text()


def _typing_imports() -> dict[str, str]:
    """Name -> module of the imports under ``if TYPE_CHECKING:`` in deadcheck/__init__.py."""
    tree = ast.parse((ROOT / "deadcheck" / "__init__.py").read_text())
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                names.update({alias.name: str(stmt.module) for alias in stmt.names})
    return names


def test_all_the_lazy_loader_and_the_typing_imports_agree() -> None:
    assert sorted(deadcheck.__all__) == sorted(["__version__", *deadcheck._EXPORTS])
    assert _typing_imports() == deadcheck._EXPORTS
    for name, module in deadcheck._EXPORTS.items():
        value = getattr(deadcheck, name)
        assert value.__module__ == module, name  # defined where the list says


@pytest.mark.parametrize("name", sorted(deadcheck._EXPORTS))
def test_docs_api_names_every_export(name: str) -> None:
    assert re.search(rf"`(deadcheck\.)?{name}\b", API_DOC), f"docs/api.md does not name {name}"


FUNCTIONS = [
    "record",
    "analyze",
    "scan",
    "scan_target",
    "swap",
    "plan_swap",
    "apply_plan",
    "plot_report",
]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docs_api_gives_each_functions_parameters(name: str) -> None:
    """Every parameter of the function appears in the docs' heading or row for it."""
    lines = [line for line in API_DOC.splitlines() if f"deadcheck.{name}(" in line]
    assert lines, f"docs/api.md has no signature for deadcheck.{name}"
    documented = lines[0]
    for parameter in inspect.signature(getattr(deadcheck, name)).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            assert f"**{parameter.name}" in documented, (name, parameter.name)
        elif parameter.kind is not parameter.VAR_POSITIONAL:
            assert parameter.name in documented, (name, parameter.name)


def test_names_never_released_are_gone() -> None:
    """0.1.0 was never released: its renamed names are not kept as shims."""
    assert not hasattr(deadcheck, "LayerReport")
    report = deadcheck.analyze(deadcheck.Stats(sites=(), samples=0))
    assert not hasattr(report, "layers") and not hasattr(report, "layer")
    assert "nonfinite_units" not in deadcheck.SiteReport.__dict__
