"""The import graph of landscape/: layers, no upward import, no cycle.

Every import of a landscape module (at module level, inside functions, under
``TYPE_CHECKING``), read from the source with ``ast``, is an edge between two
*components*: the top-level modules and subpackages of ``landscape`` (a subpackage's
command line, ``hessian/_cli.py`` or ``surface/__main__.py``, belongs to it). The
components sit in layers; a component may import its own layer (without a cycle) and
the layers below it, never a layer above:

    0  foundation     _utils, _pool, io, _batches (the one owner of ``data``),
                      _dist (the distributed engine), _memory (memory budgets),
                      _finite (NaN / inf in weights, losses and results),
                      _cli (flags and one-line errors of every command line),
                      _progress (the one progress display: a bar or log lines)
    1  inputs         data, models, attacks, schedules
    2  analyses       checkpoints, directions, hessian, surface, scattering, certify,
                      sharpness
    3  training and   train, evaluate, linear (trains through the trainer),
       evaluation     connectivity (curves trained by the trainer)
    4  drawing        plot (takes results, computes nothing)
    5  applications   report, demo, ``python -m landscape`` (__main__)

A new module gets a row here. Imports spelled as strings
(``importlib.import_module``: the lazy submodules of ``landscape/__init__.py``, the
plot command line's lookup of a result class by name) are not edges.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import landscape

LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "__init__",
            "_utils",
            "_pool",
            "_dist",
            "_memory",
            "io",
            "_batches",
            "_cli",
            "_finite",
            "_progress",
        }
    ),
    frozenset({"data", "models", "attacks", "schedules"}),
    frozenset(
        {
            "checkpoints",
            "directions",
            "hessian",
            "surface",
            "scattering",
            "certify",
            "sharpness",
        }
    ),
    frozenset({"train", "evaluate", "linear", "connectivity"}),
    frozenset({"plot"}),
    frozenset({"report", "demo", "__main__"}),
)
LAYER = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """``landscape.a.b`` of a file and whether it is a package's ``__init__``."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The landscape modules an import statement names (absolute dotted names)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "landscape"]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    if prefix.split(".")[0] != "landscape":
        return []
    if prefix == "landscape":  # from landscape import hessian, io
        return [f"landscape.{a.name}" for a in node.names]
    return [prefix]


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_edges(root: Path) -> dict[tuple[str, str], list[str]]:
    """``(component, imported component) -> ["file:line", ...]`` of landscape/."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        module, is_package = _module_name(path, root)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for target in _targets(node, module, is_package):
                a, b = _component(module), _component(target)
                if a != b:
                    where = f"{path.relative_to(root.parent)}:{node.lineno}"
                    edges[(a, b)].append(where)
    return dict(edges)


def cycles(edges) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(graph) | {b for _, b in edges}):
        if v not in index:
            visit(v)
    return found


ROOT = Path(landscape.__file__).resolve().parent
EDGES = import_edges(ROOT)


def test_every_component_has_a_layer():
    names = {_component(_module_name(p, ROOT)[0]) for p in ROOT.rglob("*.py")}
    assert names - set(LAYER) == set(), "give the new module a layer in LAYERS"
    assert set(LAYER) - names == set(), "a module in LAYERS no longer exists"


def test_no_import_from_a_lower_layer_up():
    upward = {
        f"{a} (layer {LAYER.get(a)}) -> {b} (layer {LAYER.get(b)})": where
        for (a, b), where in EDGES.items()
        if LAYER.get(a, -1) < LAYER.get(b, -1)
    }
    assert upward == {}


def test_no_import_cycle():
    assert cycles(EDGES) == []


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({("a", "b"), ("b", "c")}, []),
        ({("a", "b"), ("b", "a")}, [["a", "b"]]),
        ({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}, [["a", "b", "c"]]),
    ],
)
def test_cycle_finder(edges, expected):
    assert cycles(edges) == expected


def test_edges_include_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "landscape"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "io.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .. import io\n")
    (pkg / "sub" / "_cli.py").write_text(
        "def main():\n    from ..plot.__main__ import main\n    import landscape.demo\n"
    )
    assert set(import_edges(pkg)) == {("sub", "io"), ("sub", "plot"), ("sub", "demo")}
