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
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
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
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in raw.items()
        if module.split(".")[0] == package
        for name in names
        if name.split(".")[0] in FORBIDDEN[package]
    )
    assert offenders == []


def test_train_layers_import_downwards():
    graph, _ = build_graph()

    def layer(module: str) -> int | None:
        parts = module.split(".")
        return TRAIN_LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in TRAIN_LAYERS else None

    upward = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.startswith("train.") and layer(module) is not None
        for target in targets
        if target.startswith("train.") and layer(target) is not None and layer(target) > layer(module)
    )
    assert upward == []


# The tools' packages the demo uses through their public names only (`from cifar5m import X`, X in __all__);
# `shards` is the shared plumbing and may be imported from any of its modules.
PUBLIC_ONLY = ("cifar5m", "train", "dogbird")


def demo_private_imports(public: dict[str, set[str]], demo_dir: Path = ROOT / "demo") -> list[str]:
    """Every import in `demo_dir` of a PUBLIC_ONLY package that is not `from PKG import NAME` with NAME in
    `public[PKG]` (its __all__): deep imports, `import PKG`, and names it does not list."""
    found = []
    for path in sorted(demo_dir.rglob("*.py")):
        where = path.relative_to(demo_dir.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [
                    f"{where}:{node.lineno} import {a.name}" for a in node.names if a.name.split(".")[0] in public
                ]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                package = node.module.split(".")[0]
                if package not in public:
                    continue
                if node.module != package:
                    found.append(f"{where}:{node.lineno} from {node.module} import ...")
                else:
                    found += [
                        f"{where}:{node.lineno} from {package} import {a.name}"
                        for a in node.names
                        if a.name not in public[package]
                    ]
    return found


def test_demo_imports_only_public_names():
    import importlib

    public = {name: set(importlib.import_module(name).__all__) for name in PUBLIC_ONLY}
    assert {"plan_generation", "run_plan"} <= public["cifar5m"]  # the walk read real __all__ lists
    assert demo_private_imports(public) == []


def test_demo_import_check_finds_a_deep_import(tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "mod.py").write_text(
        "from cifar5m.sample import resolve_device\nfrom train import RunConfig, secret\n"
        "import dogbird.build\nfrom shards.jsonio import read_json\n"
    )
    public = {"cifar5m": {"GenerateConfig"}, "train": {"RunConfig"}, "dogbird": set()}
    assert demo_private_imports(public, demo) == [
        "demo/mod.py:1 from cifar5m.sample import ...",
        "demo/mod.py:2 from train import secret",
        "demo/mod.py:3 import dogbird.build",
    ]


@pytest.mark.parametrize("package", ["cifar5m", "train"])
def test_lazy_names_match_their_type_checking_imports(package):
    """`_LAZY` (what __getattr__ imports at run time) and the `if TYPE_CHECKING:` imports (what the type
    checker sees) name the same things from the same modules."""
    import importlib

    tree = ast.parse((ROOT / package / "__init__.py").read_text())
    guarded = {
        alias.name: node.module
        for block in tree.body
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert guarded == importlib.import_module(package)._LAZY
