"""The import graph of the first-party packages: no cycles, and dependencies pointing one way.

Every import counts, including those inside functions, since a deferred import still ties two modules
together.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shards", "cifar5m", "dogbird", "train", "demo")

# package -> first-party packages it must never import (the tools meet through datasets on disk)
FORBIDDEN = {
    "shards": {"cifar5m", "dogbird", "train", "demo"},
    "cifar5m": {"train", "demo", "dogbird"},
    "train": {"cifar5m", "demo", "dogbird"},
    "dogbird": {"cifar5m", "train", "demo"},
}


# train's subpackages, lowest first: each may import train.errors and the layers up to itself, never above.
TRAIN_LAYERS = ("core", "data", "run", "labeler", "reporting", "experiments", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import statement in `path` names (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def build_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> first-party modules it imports, module -> every name it imports)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph, raw = {}, {}
    for module, path in files.items():
        raw[module] = imported_names(path, module)
        graph[module] = {name for name in raw[module] if name in files and name != module}
    return graph, raw


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]

    def visit(root: str) -> None:
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("from . import sibling\nfrom ..other import thing\n")
    assert imported_names(path, "pkg.sub.mod") >= {"pkg.sub.sibling", "pkg.other", "pkg.other.thing"}


def test_no_import_cycles():
    graph, _ = build_graph()
    assert "train.run.loop" in graph or "train" not in PACKAGES  # the walk saw the packages
    assert cycles(graph) == []


@pytest.mark.parametrize("package", [p for p in PACKAGES if p in FORBIDDEN])
def test_dependencies_point_one_way(package):
    _, raw = build_graph()
    offenders = sorted(f"{module} imports {name}" for module, names in raw.items()
                       if module.split(".")[0] == package
                       for name in names if name.split(".")[0] in FORBIDDEN[package])
    assert offenders == []


def test_train_layers_import_downwards():
    graph, _ = build_graph()

    def layer(module: str) -> int | None:
        parts = module.split(".")
        return TRAIN_LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in TRAIN_LAYERS else None

    upward = sorted(f"{module} imports {target}" for module, targets in graph.items()
                    if module.startswith("train.") and layer(module) is not None
                    for target in targets if target.startswith("train.") and layer(target) is not None
                    and layer(target) > layer(module))
    assert upward == []
