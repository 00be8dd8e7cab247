"""The package's import graph: layered, acyclic, no private names across modules.

Imports inside functions count too (a lazy import only hides a cycle); imports under
``if TYPE_CHECKING:`` do not, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "vudo_runtime"

#: Lower layers never import higher ones: compile -> host functions -> instance manager
#: -> Spirit -> Séance (README, "Architecture").
LAYERS: list[set[str]] = [
    {"errors", "threads", "_binary", "protocols", "metrics"},
    {"engine", "_native", "scalars"},
    {"cache", "module", "options", "layout", "codec", "signing", "manifest"},
    {"heap", "memory"},
    {"loa", "loas", "loas.core", "loas.messaging", "loas.state", "loas.wasi"},
    {"registry", "linking"},
    {"instances"},
    {"spirit"},
    {"pool", "facade", "seance"},
    {"ray_backend"},
    {"__init__"} | {f"codegen.{m}" for m in ("ast", "lexer", "types")},
    {"codegen.parser", "codegen.emit"},
    {"codegen.generator", "codegen.from_wasm", "codegen.pyexpr"},
    {"codegen", "codegen.__main__", "codegen.package"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[tuple[str, list[str], int]]:
    """``(module, names, line)`` for every vudo_runtime import that runs."""
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "vudo_runtime" or node.module.startswith("vudo_runtime."):
                found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("vudo_runtime."):
                    found.append((alias.name, [], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _edges() -> dict[str, set[tuple[str, int]]]:
    """Who imports whom, as module names relative to the package."""
    edges: dict[str, set[tuple[str, int]]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names, line in _imports(ast.parse(path.read_text(), str(path))):
            target = module.removeprefix("vudo_runtime").removeprefix(".") or "__init__"
            # `from vudo_runtime import _native` names a module, not something of __init__
            subs = [f"{target}.{n}" if target != "__init__" else n for n in names]
            modules = [s for s in subs if s in MODULES]
            if modules and len(modules) == len(subs):
                edges[name].update((m, line) for m in modules)
            else:
                edges[name].add((target, line))
    return edges


def test_every_module_has_a_layer() -> None:
    assert sorted(set(MODULES) - set(RANK)) == []


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = [
        f"{name} (layer {RANK[name]}) imports {target} (layer {RANK[target]}) at line {line}"
        for name, targets in _edges().items()
        for target, line in sorted(targets)
        if target != name and RANK[target] > RANK[name]
    ]
    assert wrong == []


def test_the_import_graph_is_acyclic() -> None:
    graph = {name: {t for t, _ in targets if t != name} for name, targets in _edges().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_private_names_are_imported_across_modules() -> None:
    private = [
        f"{name}: from {module} import {n} (line {line})"
        for name, path in MODULES.items()
        for module, names, line in _imports(ast.parse(path.read_text()))
        for n in names
        if n.startswith("_") and f"{module}.{n}".removeprefix("vudo_runtime.") not in MODULES
    ]
    assert private == []


def test_the_graph_check_sees_lazy_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vudo_runtime.spirit import Spirit\n"
        "def f():\n    from vudo_runtime.pool import InstancePool\n"
    )
    assert [m for m, _, _ in _imports(tree)] == ["vudo_runtime.pool"]
