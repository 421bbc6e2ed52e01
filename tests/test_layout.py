"""The shape of the house (docs/architecture.md): which family may import which, read from the
source itself, so a back edge fails here rather than surfacing later as an import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sweep

PACKAGE = Path(sweep.__file__).parent
CORE = {"errors", "columns"}
# What each family may import from sweep, besides itself: edges point to the core, never back.
MAY_IMPORT = {
    "errors": set(),
    "columns": {"errors"},
    "model": CORE,
    "config": CORE | {"model"},
    "data": CORE | {"config"},  # its config section; nothing of models, training or files
    "store": CORE | {"model", "config"},
    "engine": CORE | {"model", "config", "data", "store"},  # store: only its atomic file writer, for checkpoints
    "runner": CORE | {"model", "config", "data", "store", "engine"},
    "launch": CORE | {"model", "config", "data", "store", "engine", "runner"},
    "laws": CORE,
    "codelength": CORE | {"model", "config", "data", "store", "laws"},
    "cli": CORE | {"model", "config", "data", "store", "engine", "runner", "launch", "laws", "codelength"},
    "__init__": {"store"},
    "__main__": {"cli"},
}
MAX_MODULE_LINES = 400
MAX_PACKAGE_MODULES = 10


def _family(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _sweep_imports(path: Path) -> set[str]:
    """The families of sweep that `path` imports anywhere in it, function-level imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "sweep" else [f"sweep.{alias.name}" for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("sweep.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_from_the_edges_to_the_core(path):
    family = _family(path)
    back_edges = _sweep_imports(path) - MAY_IMPORT[family] - {family}
    assert not back_edges, f"{path.relative_to(PACKAGE)} ({family}) imports {sorted(back_edges)}"


def test_every_module_is_short_and_every_package_small():
    long = {
        str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    for package in (p for p in PACKAGE.rglob("*") if p.is_dir() and (p / "__init__.py").exists() and p != PACKAGE):
        modules = [m for m in package.glob("*.py") if m.name != "__init__.py"]
        assert len(modules) <= MAX_PACKAGE_MODULES, f"{package.relative_to(PACKAGE)} has {len(modules)} modules"
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == {"__init__.py", "__main__.py", "errors.py", "columns.py"}, "src/sweep/ holds only the package's face"


@pytest.mark.parametrize(
    "package, absent",
    [
        ("sweep.config", ["torch", "pandas", "rich", "sweep.store"]),
        ("sweep.store", ["torch", "typer", "sweep.laws"]),
        ("sweep.cli", ["torch", "pandas", "scipy", "matplotlib"]),  # every command starts fast: `sweep status`, --help
    ],
)
def test_a_family_loads_without_what_it_must_not_know(package, absent):
    """Checked in a fresh interpreter: what a family pulls in when imported, lazily imported code aside
    (the laws have their own test, tests/test_laws_imports.py)."""
    code = f"import sys, {package}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not loaded, f"importing {package} loads {loaded}"
