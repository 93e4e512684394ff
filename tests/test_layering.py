"""The package's modules import one another without a cycle (issue 18: layers import downward only).

The graph is read from the source (ast), never by importing: an edge A -> B for every `import` or
`from ... import` in module A that names module B, anywhere in A (imports inside functions, the lazy
ones, count too: they are the ones that hide a cycle). `from pkg import name` counts as an import of
`pkg` (its `__init__` runs) and, when `name` is a submodule, of `pkg.name` as well. A package's
`__init__` is the module named after the package.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "actmine"


def module_names(root: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module under the package directory `root`."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imported(module: str, path: Path, node: ast.ImportFrom, modules: dict[str, Path]) -> list[str]:
    """The modules a `from ... import ...` in `module` names: the base, and each imported name
    that is a submodule. Relative bases are resolved against the module's package."""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    named = [base] + [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in named if name in modules]


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the modules it imports} for the package directory `root`, lazy imports included."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom):
                targets = _imported(module, path, node, modules)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name in modules]
            else:
                continue
            graph[module].update(target for target in targets if target != module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None when the graph has none (iterative depth-first
    search, modules and their imports in sorted order, so the answer is reproducible)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once finished
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = "open"
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = "done"
                stack.pop()
            elif state.get(following) == "open":
                return path[path.index(following) :] + [following]
            elif following not in state:
                state[following] = "open"
                path.append(following)
                stack.append(iter(sorted(graph.get(following, ()))))
    return None


def test_the_package_has_no_import_cycle():
    graph = import_graph(PACKAGE_ROOT)
    assert len(graph) > 50 and "actmine.evolve.controller" in graph  # the package was read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_lower_layers_do_not_import_the_upper_ones():
    """A few edges the layering forbids, named: activations/lab -> candidate -> evolve ->
    report/reproduce -> cli/api/serve; the version comes from a leaf module, not the top package."""
    graph = import_graph(PACKAGE_ROOT)
    reachable = _reachable(graph)
    assert "actmine.cli" not in reachable["actmine.api"]  # the API and the CLI share `targets`
    for lower in ("actmine.lab.tasks", "actmine.lab.fitness", "actmine.candidate.sandbox"):
        assert not {m for m in reachable[lower] if m.startswith(("actmine.evolve", "actmine.report"))}, lower
    assert "actmine.evolve.controller" not in reachable["actmine.report.html"]
    assert graph["actmine.version"] == set()
    importers_of_top = sorted(module for module, imported in graph.items() if "actmine" in imported)
    assert importers_of_top == [], importers_of_top


def _reachable(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """{module: every module it imports, directly or not}."""
    reachable = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for following in graph[todo.pop()]:
                if following not in seen:
                    seen.add(following)
                    todo.append(following)
        reachable[start] = seen
    return reachable


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `pkg` under tmp_path with the given {relative path: source} files."""
    for name, source in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return tmp_path / "pkg"


@pytest.mark.parametrize(
    "files, expected",
    [
        # a lazy import inside a function closes the cycle
        (
            {"__init__.py": "", "a.py": "from .b import f\n", "b.py": "def f():\n    from .a import g\n    return g\n"},
            ["pkg.a", "pkg.b", "pkg.a"],
        ),
        # a package __init__ importing its submodule, and the submodule importing the package
        (
            {"__init__.py": "from .sub import thing\n", "sub.py": "from . import helper\nthing = 1\n", "helper.py": ""},
            ["pkg", "pkg.sub", "pkg"],
        ),
        # absolute imports, through a subpackage, three modules round
        (
            {
                "__init__.py": "",
                "low/__init__.py": "",
                "low/x.py": "import pkg.mid\n",
                "mid.py": "from pkg.top import y\n",
                "top.py": "from .low import x\ny = 1\n",
            },
            ["pkg.low.x", "pkg.mid", "pkg.top", "pkg.low.x"],
        ),
    ],
)
def test_a_planted_cycle_is_found_and_named(tmp_path, files, expected):
    graph = import_graph(_package(tmp_path, files))
    cycle = find_cycle(graph)
    assert cycle is not None
    assert set(cycle) == set(expected) and cycle[0] == cycle[-1] and len(cycle) == len(expected)
    for a, b in zip(cycle, cycle[1:]):
        assert b in graph[a]


def test_an_acyclic_package_passes(tmp_path):
    files = {
        "__init__.py": "",
        "top.py": "from .low import f\nrun = f\n",
        "low.py": "import math\n\ndef f():\n    from . import base\n    return math.pi\n",
        "base.py": "VALUE = 1\n",
    }
    graph = import_graph(_package(tmp_path, files))
    assert graph["pkg.low"] == {"pkg", "pkg.base"}  # `from . import base` names the package too
    assert find_cycle(graph) is None


# -- small rooms: no module over 600 lines, no function over 80 ----------------------------------------

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 80


def _sizes() -> tuple[dict[str, int], dict[str, int]]:
    modules, functions = {}, {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        name = str(path.relative_to(PACKAGE_ROOT.parent))
        source = path.read_text()
        modules[name] = len(source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[f"{name}:{node.lineno} {node.name}"] = node.end_lineno - node.lineno + 1
    return modules, functions


def test_modules_and_functions_are_small():
    modules, functions = _sizes()
    assert len(modules) > 100
    assert {m: n for m, n in modules.items() if n > MAX_MODULE_LINES} == {}
    assert {f: n for f, n in functions.items() if n > MAX_FUNCTION_LINES} == {}


# -- one format: `ruff format --check .` in make test ------------------------------------------------


def test_every_module_is_formatted_with_no_exceptions():
    import subprocess
    import sys
    import tomllib

    root = PACKAGE_ROOT.parent
    ruff = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["ruff"]
    assert "exclude" not in ruff.get("format", {})  # no module waits outside the format
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "actmine"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
