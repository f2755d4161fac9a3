"""The import graph of ``cron`` has no cycle — function-local imports included.

A cycle kept alive by imports inside functions still means two modules that
cannot be read, tested or ported apart (the round-1 circle ``jobs ->
scheduler_provider -> scheduler -> jobs`` was exactly that). This test reads
every module's ``import`` statements with :mod:`ast` — nothing is imported or
run — builds the graph and fails naming every cycle it finds. Imports under
``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cron

ROOT = Path(cron.__file__).parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def target(mod: str) -> str | None:
        # The longest known module that ``mod`` names (``cron.stores.json`` or ``cron.stores``).
        while mod:
            if mod in known:
                return mod
            mod = mod.rpartition(".")[0]
        return None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                t = target(alias.name)
                if t:
                    found.add(t)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            for alias in node.names:
                t = target(f"{mod}.{alias.name}") if mod else None
                if t is None or t == name:
                    t = target(mod)
                if t:
                    found.add(t)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard(name)
    # A package's modules import their own package implicitly; that edge is not a cycle.
    return {t for t in found if not name.startswith(t + ".")}


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(name, path, known) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strongconnect(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return out


def test_the_checker_finds_a_cycle_it_is_shown() -> None:
    # The check itself must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_local_imports() -> None:
    graph = import_graph()
    # cron.store imports cron.stores at module level; cron.job_core imports cron.job_events
    # only inside a function — both edges must be in the graph.
    assert "cron.stores" in graph["cron.store"]
    assert "cron.job_events" in graph["cron.job_core"]


def test_cron_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles in cron/: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_data_layer_never_imports_the_trigger_or_web_layers() -> None:
    # The dependency points down: jobs, stores and the ledger know nothing of who fires.
    graph = import_graph()
    upper = {
        "cron.scheduler",
        "cron.scheduler_provider",
        "cron.ticker",
        "cron.webhook",
        "cron.webhook_auth",
        "cron.webhook_client",
        "cron.gateway",
        "cron.cli",
        "cron.status",
        "cron.plugins",
        "cron.runtime",
        "cron.run_path",
        "cron.retry_path",
        "cron.live_runs",
        "cron.claim_keeper",
    }

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    for low in ("cron.jobs", "cron.store", "cron.stores", "cron.executions", "cron.claim"):
        bad = sorted(m for m in reach(low) if m in upper or m.startswith("cron.cli."))
        assert bad == [], f"{low} reaches {bad}"
