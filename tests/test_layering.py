"""The import graph of ``platform/expunge``, ``llm`` and ``jobs`` has no cycle and follows one layer order.

``LAYERS`` is the order, written down here once (the README's Layout section describes it): a module
may import from its own package and from packages of lower layers, never from a higher layer nor from
another package of its own layer. Only the Ray layer (``runtime``), the stages, ``jobs`` and the CLI
import Ray. Imports inside functions count: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOTS = {REPO / "platform" / "expunge": "expunge", REPO / "llm": "expunge.llm", REPO / "jobs": "expunge.jobs"}

#: bottom to top; each inner tuple is one layer of packages (or top-level modules) of ``expunge``
LAYERS: tuple[tuple[str, ...], ...] = (
    ("expunge", "errors", "versions", "progress", "faults", "seeds"),  # the package itself and shared plumbing
    ("registry", "config"),        # the one registry type; the pure schema and config loading
    ("data", "models", "metrics", "store"),  # datasets and splits, architectures, pure metric formulas, artifacts
    ("train",),                    # the training loop, optimisers, batched ensembles
    ("unlearn",),                  # unlearning methods and their search spaces
    ("resolve", "experiment"),     # config checked against the registries; one experiment's artifacts
    ("fleet",),                    # fleet members and membership
    ("audit",),                    # the audit stage, the leaderboard's arithmetic, relearning, fleet epsilon
    ("report", "claims"),          # reports; the papers' claims checked on audit tables
    ("runtime",),                  # the Ray layer: start-up, tasks, Ray Train, Tune glue
    ("stages",),                   # the stage runners
    ("sweep",),                    # sweeps over stages with Tune
    ("llm",),                      # expunge.llm: language-model unlearning and audits
    ("jobs",),                     # python -m entrypoints
    ("cli",),                      # the expunge command
)
RAY_LAYERS = {"runtime", "stages", "jobs", "cli"}


def _modules() -> dict[str, Path]:
    mods = {}
    for root, pkg in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = path
    return mods


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "expunge"


def _imports(module: str, path: Path, known: dict[str, Path]) -> tuple[set[str], bool]:
    """The expunge modules ``module`` imports (resolved to the nearest known module) and whether it imports Ray."""
    targets, ray = set(), False
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            ray |= name == "ray" or name.startswith("ray.")
            while name.startswith("expunge") and name not in known:
                name = name.rpartition(".")[0]
            if name in known and name != module:
                targets.add(name)
    return targets, ray


def _graph() -> tuple[dict[str, set[str]], set[str]]:
    known = _modules()
    graph, ray_users = {}, set()
    for module, path in known.items():
        graph[module], ray = _imports(module, path, known)
        if ray:
            ray_users.add(module)
    return graph, ray_users


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _rank() -> dict[str, int]:
    return {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def test_every_package_has_a_layer():
    graph, _ = _graph()
    missing = sorted({_package(m) for m in graph} - set(_rank()))
    assert not missing, f"packages without a layer in LAYERS: {missing}"


def test_no_import_cycle():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_imports_follow_the_layer_order():
    graph, _ = _graph()
    rank = _rank()
    wrong = []
    for a, targets in sorted(graph.items()):
        for b in sorted(targets):
            pa, pb = _package(a), _package(b)
            if pa != pb and rank[pa] <= rank[pb] and pb != "expunge":
                wrong.append(f"{a} -> {b}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_only_the_ray_layer_stages_and_jobs_import_ray():
    _, ray_users = _graph()
    assert sorted(m for m in ray_users if _package(m) not in RAY_LAYERS) == []


def test_the_checks_catch_what_they_should():
    """The cycle finder and the order check fail on a planted cycle and an upward import."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    rank = _rank()
    assert rank["train"] < rank["unlearn"] < rank["stages"] < rank["jobs"]
    assert _package("expunge.unlearn.cpu") == "unlearn" and _package("expunge.llm.attacks") == "llm"
    assert _package("expunge") == "expunge"


def _private_imports(path: Path) -> list[str]:
    """``from expunge... import _name``: a private name taken from another module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("expunge"):
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.endswith("__")]  # __version__ is public
    return found


def test_no_module_imports_another_modules_private_names(tmp_path):
    wrong = {m: names for m, path in _modules().items() if (names := _private_imports(path))}
    assert not wrong, f"private names imported from other modules: {wrong}"
    planted = tmp_path / "planted.py"
    planted.write_text("from expunge.data.splits import _hidden, public\n")
    assert _private_imports(planted) == ["expunge.data.splits._hidden"]
