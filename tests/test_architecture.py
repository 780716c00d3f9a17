"""Architecture rules a refactor must not break."""

from __future__ import annotations

import subprocess
import sys

CORE = [
    "thresher.data",
    "thresher.models",
    "thresher.train",
    "thresher.evaluate",
    "thresher.embed",
    "thresher.filter",
    "thresher.run_filter",
    "thresher.store",
    "thresher.runs",
    "thresher.demo",
    "thresher.explain",
    "thresher.reduce",
    "thresher.reduce.workflow",
    "thresher.reduce.scorer",
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
