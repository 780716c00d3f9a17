"""Architecture rules a refactor must not break."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "thresher"

# The layers of docs/architecture.md: a module may import its own layer and the ones below.
FOUNDATION, DOMAIN, WORKFLOWS, EDGES = range(4)
LAYERS = {
    **dict.fromkeys(("errors", "registry", "device", "precision", "optional", "progress",
                     "validation"), FOUNDATION),
    **dict.fromkeys(("store", "data", "models", "train", "evaluate", "embed", "neighbours",
                     "filter", "diagnose", "explain", "lrp_gus", "planted", "distributed"),
                    DOMAIN),
    **dict.fromkeys(("workflows", "demo"), WORKFLOWS),
    **dict.fromkeys(("report", "app", "cli"), EDGES),
}  # fmt: skip


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(thresher module, at module level)`` for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        found += [(n, id(node) in top_level) for n in names if n.startswith("thresher.")]
    return found


def _top(module: str) -> str:
    return module.split(".")[1]


CORE = [
    "thresher.data",
    "thresher.models",
    "thresher.train",
    "thresher.evaluate",
    "thresher.embed",
    "thresher.filter",
    "thresher.neighbours",
    "thresher.validation",
    "thresher.store",
    "thresher.workflows",
    "thresher.demo",
    "thresher.explain",
    "thresher.lrp_gus",
    "thresher.lrp_gus.scorer",
    "thresher.diagnose",
    "thresher.distributed",
    "thresher.app",
]
EDGE_ONLY = ["typer", "rich", "click", "matplotlib", "plotly", "fastapi", "uvicorn", "timm", "ray"]


def test_core_imports_no_cli_plotting_or_web_framework() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"print(sorted(m for m in {EDGE_ONLY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_no_pickle_import_outside_the_restricted_unpickler() -> None:
    import pathlib

    src = pathlib.Path(__file__).resolve().parents[1] / "src" / "thresher"
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if "import pickle" in p.read_text() and p.name != "cifar.py"
    ]
    assert offenders == []


def test_every_module_imports_only_its_layer_and_below() -> None:
    """Domain packages never read run directories through the workflows nor draw; workflows
    may draw only lazily (``thresher.report`` inside a function, after the plotting extra was
    checked); report and app never import the CLI."""
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        own = rel.parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        assert own in LAYERS, f"{own} has no layer in this test: add it to LAYERS"
        for module, top_level in _imports(path):
            other = _top(module)
            allowed = LAYERS[other] <= LAYERS[own]
            if LAYERS[own] == WORKFLOWS and other == "report" and not top_level:
                allowed = True
            if own in ("report", "app") and other == "cli":
                allowed = False
            if not allowed:
                offenders.append(f"{rel} imports {module}")
    assert offenders == []


def test_no_import_cycle_between_packages() -> None:
    """The package graph (module-level and lazy imports alike) has no cycle, e.g. no
    ``workflows -> distributed -> workflows``."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        own = path.relative_to(SRC).parts[0].removesuffix(".py")
        if own == "__init__":
            continue
        graph.setdefault(own, set()).update(_top(m) for m, _ in _imports(path) if _top(m) != own)
    # lazy drawing from the workflows is the one allowed upward edge (see above)
    for own in ("workflows", "demo"):
        graph[own].discard("report")

    def cycle_from(node: str, stack: list[str]) -> list[str] | None:
        if node in stack:
            return [*stack[stack.index(node) :], node]
        for nxt in sorted(graph.get(node, ())):
            found = cycle_from(nxt, [*stack, node])
            if found:
                return found
        return None

    cycles = [c for c in (cycle_from(n, []) for n in sorted(graph)) if c]
    assert cycles == []


def test_public_entry_points_come_from_thresher_itself_without_loading_torch() -> None:
    code = (
        "import sys, thresher\n"
        "assert 'torch' not in sys.modules\n"
        "from thresher.workflows import train_run\n"
        "assert thresher.train_run is train_run\n"
        "names = [n for n in thresher.__all__ if n not in ('ThresherError', '__version__')]\n"
        "assert all(callable(getattr(thresher, n)) for n in names)\n"
        "try:\n    thresher.no_such_thing\nexcept AttributeError as err:\n    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert "no attribute 'no_such_thing'" in out.stdout
