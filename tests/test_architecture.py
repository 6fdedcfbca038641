"""The package's shape (README, "Layout of the code"): imports go one way, down the layers of
pyproject's `[tool.importlinter]` contract, with no cycle anywhere; the top level stays small and
a subpackage's `__init__` only re-exports."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path

import grimp

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sigid"
# The venv's own lint-imports (installed with the dev extra), next to the Python running the tests.
LINT_IMPORTS = Path(sys.executable).parent / ("lint-imports" + (".exe" if os.name == "nt" else ""))
# Modules directly in sigid/ besides its subpackages and its own __init__.py.
MAX_TOP_LEVEL_MODULES = 8


def _importlinter_settings() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as file:
        return tomllib.load(file)["tool"]["importlinter"]


def import_graph() -> dict[str, set[str]]:
    """Each sigid module -> the sigid modules it imports, at any depth of its code (inside
    functions too); type-checking-only imports excluded or not as the layer contract says."""
    graph = grimp.build_graph(
        "sigid",
        exclude_type_checking_imports=_importlinter_settings().get(
            "exclude_type_checking_imports", False
        ),
        cache_dir=None,
    )
    return {
        module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], component: Iterable[str]) -> list[str]:
    """One shortest cycle through the component's first module: [a, b, ..., a]."""
    members = sorted(component)
    start = members[0]
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(graph[node] & set(members)):
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [*reversed(path), start]
            if successor not in previous:
                previous[successor] = node
                queue.append(successor)
    raise AssertionError(f"{members} is not a cycle")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle for each group of modules that import each other, directly or not."""
    return [a_cycle(graph, c) for c in strongly_connected(graph) if len(c) > 1]


def describe(graph: dict[str, set[str]]) -> str:
    """Each group of modules that import each other, with one cycle through it."""
    lines = []
    for component in strongly_connected(graph):
        if len(component) > 1:
            lines.append(f"{len(component)} modules import each other: {', '.join(component)}")
            lines.append("  for instance " + " -> ".join(a_cycle(graph, component)))
    return "\n".join(lines)


def lint_imports(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_strongly_connected_finds_cycles() -> None:
    """The checker itself: a package importing its submodule and back is a cycle; a chain is not."""
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p"}, "q": {"p"}, "r": set()}
    assert cycles(graph) == [["p", "p.a", "p.b", "p"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle() -> None:
    """No group of sigid's modules imports each other, counting imports inside functions.

    A package's `__init__` re-exporting a submodule's name is an import of that submodule, so a
    submodule importing from its own package (rather than from the sibling module) is a cycle.
    """
    graph = import_graph()
    assert "sigid.data.images" in graph["sigid.data"]  # grimp saw the package's re-exports
    assert not cycles(graph), "import cycles:\n" + describe(graph)


def test_layer_contract_kept() -> None:
    """`lint-imports` (the contract in pyproject.toml, as CI runs it) passes on this tree."""
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_layer_contract_refuses_an_upward_import(tmp_path: Path) -> None:
    """A data module importing from training (a layer above it) breaks the contract, even
    inside a function; checked on a copy of the package, which lint-imports really analyses
    (the unchanged copy passes)."""
    shutil.copytree(PACKAGE, tmp_path / "sigid", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    # No conf/ (sigid.conf when installed): grimp reads sigid/'s files, and no module imports
    # sigid.conf by an import statement (Hydra finds it by name).

    kept = lint_imports(tmp_path, PYTHONPATH=str(tmp_path))
    assert kept.returncode == 0, kept.stdout + kept.stderr

    module = tmp_path / "sigid" / "data" / "images.py"
    upward = "\n\ndef _upward() -> None:\n    from sigid.training import run  # noqa\n"
    module.write_text(module.read_text() + upward)
    broken = lint_imports(tmp_path, PYTHONPATH=str(tmp_path))
    output = broken.stdout + broken.stderr
    assert broken.returncode != 0, output
    assert "BROKEN" in output
    assert "sigid.data" in output and "sigid.training" in output, output


def test_top_level_is_small() -> None:
    """sigid/ holds its subpackages and at most a handful of modules (entry points and leaves)."""
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def _defines_more_than_reexports(init: Path) -> list[str]:
    """What a subpackage `__init__.py` holds besides its docstring, imports and `__all__`
    (and a module-level `__getattr__`/`__dir__` for names loaded on first use)."""
    tree = ast.parse(init.read_text(), filename=str(init))
    found = []
    for position, node in enumerate(tree.body):
        if position == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.If) and all(
            isinstance(inner, ast.Import | ast.ImportFrom) for inner in node.body
        ):
            continue  # `if TYPE_CHECKING:` imports
        if isinstance(node, ast.FunctionDef) and node.name in {"__getattr__", "__dir__"}:
            continue
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if targets and all(isinstance(t, ast.Name) and t.id.startswith("_") for t in targets):
            continue  # `__all__`, and the name -> module table of a lazy `__getattr__`
        found.append(f"{init.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return found


def test_subpackage_inits_only_reexport() -> None:
    """A subpackage's `__init__.py` names what it offers; the code lives in its modules."""
    inits = sorted(PACKAGE.glob("*/**/__init__.py"))
    assert PACKAGE / "data" / "__init__.py" in inits
    found = [line for init in inits for line in _defines_more_than_reexports(init)]
    assert not found, "code in a subpackage's __init__.py:\n" + "\n".join(found)


def test_every_package_ships_in_the_wheel():
    """pyproject.toml lists the packages explicitly (sigid.conf is mapped from conf/): a new
    subpackage left out of the list would be missing from a regular `pip install .`."""
    import tomllib

    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    inits = (ROOT / "sigid").rglob("__init__.py")
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in inits}
    assert not found - listed, f"missing from pyproject.toml: {sorted(found - listed)}"
