"""The package's floor plan: one folder per concept, small modules and functions, no import cycles,
the command line in one place, and the old module paths of 0.1 still importable (README, "Architecture")."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "uncertsam_utils"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Package modules imported anywhere in ``path`` (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("uncertsam_utils") and m != name}


def test_no_function_longer_than_80_lines():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)


def test_no_module_longer_than_500_lines():
    long = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not long, "modules over 500 lines:\n" + "\n".join(long)


def test_no_module_imports_a_module_that_imports_it_back():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    cycles = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not cycles, "import cycles: " + ", ".join(" <-> ".join(c) for c in cycles)


def test_the_command_line_lives_in_cli():
    strays = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*cli*.py") if "cli" not in p.relative_to(PACKAGE).parts[:-1]]
    assert not strays, f"command-line modules outside uncertsam_utils/cli/: {strays}"
    for name, path in MODULES.items():
        if name.startswith("uncertsam_utils.cli"):
            continue
        source = path.read_text()
        assert "add_parser(" not in source and "add_subparsers(" not in source, f"{name} builds a parser: move it to cli/"


def test_package_code_never_imports_a_moved_path():
    from uncertsam_utils._moved import MOVED

    users = {name: sorted(_imports(name, path) & set(MOVED)) for name, path in MODULES.items()}
    users = {k: v for k, v in users.items() if v}
    assert not users, f"package modules importing 0.1 paths (use the new ones): {users}"


def test_the_moved_table_points_to_existing_modules_only():
    from uncertsam_utils._moved import MOVED

    for old, new in MOVED.items():
        assert new in MODULES, f"{old} -> {new}: no such module"
        assert old not in MODULES, f"{old} still exists as a file: remove it or the alias"


@pytest.mark.parametrize("old", sorted(importlib.import_module("uncertsam_utils._moved").MOVED))
def test_an_old_path_is_the_new_module_and_warns(old):
    from uncertsam_utils._moved import MOVED

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import sys

        sys.modules.pop(old, None)
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])
    assert module.__spec__.name == MOVED[old], "the alias renamed the new module's spec"
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)
