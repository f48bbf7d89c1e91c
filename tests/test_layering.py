"""The package's layers: imports only go down, there is no cycle, and nothing imports late.

The folders show the pipeline (``docs/architecture.md``): pure data at the
bottom, then statistics, results, analysis, recording, output and repair,
training, workflows, and the command line and integrations on top. A module
may import from its own folder and from folders below it, never from one
above or beside it. Function-level imports of deadcheck's own modules are
allowed only where they keep ``deadcheck --help`` and ``import deadcheck``
free of torch: the CLI and the lazy public names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "deadcheck"

#: Each folder's layer; a module may import only from lower layers and its own folder.
LAYERS = {
    "core": 0,
    "stats": 1,
    "results": 2,
    "analysis": 3,
    "recording": 4,
    "output": 5,
    "repair": 5,
    "training": 6,
    "workflows": 7,
    "cli": 8,
    "integrations": 8,
    "__init__": 9,
    "__main__": 9,
}

#: Modules whose function-level imports of deadcheck are there to keep torch out of startup.
LAZY = {"deadcheck.cli", "deadcheck"}

#: Public names no subpackage may take: importing it would shadow the function.
PUBLIC_FUNCTIONS = {"record", "analyze", "scan", "swap", "recycle", "render"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _folder(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported deadcheck module, at module level?, line) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    module = _module_name(path)
    found: list[tuple[str, bool, int]] = []
    top_level = {id(node) for node in tree.body}
    # imports under `if TYPE_CHECKING:` at the top count as module level
    for node in tree.body:
        if isinstance(node, ast.If):
            top_level |= {id(child) for child in node.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level + (1 if path.name == "__init__.py" else 0)]
                names = [".".join([*base, node.module or ""]).rstrip(".")]
            else:
                names = [node.module or ""]
            names += [f"{names[0]}.{alias.name}" for alias in node.names]
        for name in names:
            if name == "deadcheck" or name.startswith("deadcheck."):
                found.append((name, id(node) in top_level, node.lineno))
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deadcheck module ``name`` refers to (an attribute import resolves to its module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_folder_has_a_layer() -> None:
    folders = {_folder(m) for m in _modules()}
    assert folders <= set(LAYERS), sorted(folders - set(LAYERS))


@pytest.mark.parametrize("folder", sorted(p.name for p in PACKAGE.iterdir() if p.is_dir()))
def test_no_folder_shadows_a_public_function(folder: str) -> None:
    assert folder not in PUBLIC_FUNCTIONS


def test_imports_only_go_down() -> None:
    modules = _modules()
    upward: list[str] = []
    for module, path in modules.items():
        here = _folder(module)
        for name, _, line in _imports(path):
            target = _resolve(name, modules)
            if target is None or (target == "deadcheck" and module != "deadcheck"):
                if target == "deadcheck" and name == "deadcheck":
                    upward.append(f"{module}:{line} imports the package root")
                continue
            there = _folder(target)
            if there != here and LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module}:{line} imports {target} ({there} is not below {here})")
    assert not upward, "\n".join(upward)


def test_no_function_level_imports_of_deadcheck() -> None:
    late = [
        f"{module}:{line} imports {name} inside a function"
        for module, path in _modules().items()
        if module not in LAZY
        for name, top, line in _imports(path)
        if not top
    ]
    assert not late, "\n".join(late)


def test_there_is_no_import_cycle() -> None:
    modules = _modules()
    graph = {
        module: {
            target
            for name, _, _ in _imports(path)
            if (target := _resolve(name, modules)) is not None and target != module
        }
        for module, path in modules.items()
    }
    # a package's __init__ importing its own modules is how packages work, not a cycle
    for module in graph:
        graph[module] = {t for t in graph[module] if not module.startswith(t + ".")}
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        path.append(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        path.pop()
        done.add(node)

    for module in sorted(graph):
        visit(module)


def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The import reader sees a late import and a type-only one, so the tests above can fail."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from deadcheck.cli import main\n"
        "def f():\n    from deadcheck.workflows import loading\n"
    )
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path.parent
    try:
        found = _imports(sample)
    finally:
        PACKAGE = saved
    assert ("deadcheck.cli", True, 3) in found
    assert ("deadcheck.workflows", False, 5) in found
