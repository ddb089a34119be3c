"""The layers run one way (docs/architecture.md): a module imports only from layers below its own,
or from its own package. Every import counts, including those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "selflearn"

LAYERS: dict[str, int] = {
    "selflearn.core": 0,
    "selflearn.dialogue": 1,
    "selflearn.assistant": 2,
    "selflearn.signals": 3,
    "selflearn.mining": 4,
    "selflearn.rewrite": 4,
    "selflearn.fpi": 4,
    "selflearn.labels": 4,
    "selflearn.simulation": 5,
    "selflearn.evaluate": 6,
    # What people read: the report of a store (the service's review page is built on it).
    "selflearn.report": 6,
    # The applications on top: the public API, the command line, the HTTP service, the demo.
    # They may import each other.
    "selflearn": 7,
    "selflearn.__main__": 7,
    "selflearn.cli": 7,
    "selflearn.service": 7,
    "selflearn.demo": 7,
    "selflearn.starter": 7,
    "selflearn.docgen": 7,
    "selflearn.stats": 7,
    # The community global layer: contributions, the DP aggregator, releases (mining + rewrite).
    "selflearn.community": 7,
    # Bridges to real assistants (Wyoming, OVOS) and importers of their logs.
    "selflearn.integrations": 7,
    "selflearn.importers": 7,
}
"""Layer of each package or top-level module (longest prefix wins; ``selflearn`` itself is only
the package's ``__init__``, so a new top-level module must be placed here)."""

APPS = 7

SIBLING_EDGES = {("selflearn.mining", "selflearn.rewrite.table")}
"""Imports allowed between packages of one layer: the miner writes the table the rewriter serves."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``selflearn`` module ``path`` imports, anywhere in the file."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "selflearn" or name.startswith("selflearn.")}


def owner(module: str) -> str:
    """The entry of :data:`LAYERS` that ``module`` belongs to (longest matching prefix)."""
    best = ""
    for prefix in LAYERS:
        below = module.startswith(prefix + ".") and prefix != "selflearn"
        if (module == prefix or below) and len(prefix) > len(best):
            best = prefix
    if not best:
        raise KeyError(module)
    return best


def violations(graph: dict[str, set[str]]) -> list[str]:
    """The imports of ``graph`` (module -> imported modules) that break the layering."""
    bad = []
    for module, targets in sorted(graph.items()):
        home = owner(module)
        for target in sorted(targets):
            there = owner(target)
            if there == home or LAYERS[there] < LAYERS[home] or LAYERS[there] == LAYERS[home] == APPS:
                continue
            if LAYERS[there] == LAYERS[home] and any(
                owner(module) == a and (target == b or target.startswith(b + ".")) for a, b in SIBLING_EDGES
            ):
                continue
            bad.append(f"{module} (layer {LAYERS[home]}) imports {target} (layer {LAYERS[there]})")
    return bad


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted(SRC.rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    unplaced = []
    for module in graph():
        try:
            owner(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def test_layers_run_one_way() -> None:
    assert violations(graph()) == []


def test_core_imports_nothing_above_it() -> None:
    core = {m: t for m, t in graph().items() if owner(m) == "selflearn.core"}
    assert core and all(owner(t) == "selflearn.core" for targets in core.values() for t in targets)


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("selflearn.core.store", "selflearn.assistant.pipeline"),  # up a layer
        ("selflearn.rewrite.fit", "selflearn.fpi.model"),  # sideways, not declared
        ("selflearn.assistant.asr", "selflearn.simulation.simulator"),  # the seam this test closed
    ],
)
def test_the_check_catches_a_wrong_import(module: str, target: str) -> None:
    assert violations({module: {target}}) != []


def test_declared_sibling_edge_is_allowed_and_only_it() -> None:
    assert violations({"selflearn.mining.miner": {"selflearn.rewrite.table"}}) == []
    assert violations({"selflearn.mining.miner": {"selflearn.rewrite.rewriter"}}) != []
    assert violations({"selflearn.rewrite.rewriter": {"selflearn.mining.miner"}}) != []


def test_no_module_is_longer_than_800_lines() -> None:
    long = {
        module_name(p): n
        for p in SRC.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 800
    }
    assert not long, f"split these modules: {long}"


def runtime_imports(path: Path) -> set[str]:
    """Like :func:`imports`, without the imports under ``if TYPE_CHECKING:`` (annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The groups of modules of ``graph`` that import each other, directly or round a circle."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
        reach[start] = seen
    groups = {frozenset({m} | {o for o in reach[m] if m in reach.get(o, ())}) for m in graph if m in reach[m]}
    return sorted(groups, key=sorted)


def test_no_import_cycles() -> None:
    """No circle of imports among the modules (issue 53, what to build 5: the last ones are gone)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py") if p.name != "__init__.py"}
    graph = {m: {t for t in runtime_imports(p) if t in modules and t != m} for m, p in modules.items()}
    assert [sorted(c) for c in cycles(graph)] == []


def test_the_cycle_check_sees_a_function_level_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
