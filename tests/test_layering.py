"""The package's layering: no import cycles among harness modules, and the low-level
layers (specs, outcomes, judge, savers, telemetry) never import the high-level ones
(commands, runners, crash campaigns, reports). Module-level imports only: an import
inside a function runs when it is called and cannot make a cycle at import time."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "harness"

LOW = ("harness.specs", "harness.outcomes", "harness.units", "harness.errors", "harness.judge",
       "harness.savers", "harness.telemetry", "harness.models", "harness.fsio")
HIGH = ("harness.cli", "harness.runner", "harness.worker", "harness.faults", "harness.catalog",
        "harness.report", "harness.distributed", "harness.profile", "harness.listing")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[:len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    if not base.startswith("harness"):
        return []
    # `from . import x` may name a submodule
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        deps = set()
        for node in tree.body:  # module level only
            if isinstance(node, ast.ImportFrom):
                deps.update(d for d in _resolve(mod, path.name == "__init__.py", node) if d in files)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
        graph[mod] = deps - {mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def _under(mod: str, prefixes) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_cycle_finder_sees_a_planted_cycle():
    graph = import_graph()
    graph["harness.outcomes"] = graph["harness.outcomes"] | {"harness.runner"}
    assert find_cycle(graph) is not None


def test_low_level_modules_do_not_import_high_level_ones():
    bad = [f"{m} imports {d}" for m, deps in import_graph().items() if _under(m, LOW)
           for d in deps if _under(d, HIGH)]
    assert not bad, "; ".join(bad)
