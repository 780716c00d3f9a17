"""Thresher: see an image-classification dataset through the eyes of its model.

The workflows over run directories are importable from here (``thresher.train_run``,
``thresher.run_filter``, ...); they load on first use, so ``import thresher`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from thresher.errors import ThresherError

__version__ = "0.1.0"

# name -> the workflows module that defines it (thresher.workflows lists them all)
_WORKFLOWS = {
    "DataSpec": "run",
    "open_run": "run",
    "train_run": "train",
    "embed_run": "embed",
    "evaluate_run": "evaluate",
    "FilterSettings": "filter",
    "run_filter": "filter",
    "load_filter": "filter",
    "export_run": "export",
    "compare_run": "compare",
    "labels_run": "labels",
    "diagnose_run": "diagnose",
    "ReduceSettings": "reduce",
    "reduce_run": "reduce",
    "evaluate_cutoff": "reduce",
}

if TYPE_CHECKING:
    from thresher.workflows.compare import compare_run
    from thresher.workflows.diagnose import diagnose_run
    from thresher.workflows.embed import embed_run
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.export import export_run
    from thresher.workflows.filter import FilterSettings, load_filter, run_filter
    from thresher.workflows.labels import labels_run
    from thresher.workflows.reduce import ReduceSettings, evaluate_cutoff, reduce_run
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run


def __getattr__(name: str) -> Any:
    if name in _WORKFLOWS:
        return getattr(importlib.import_module(f"thresher.workflows.{_WORKFLOWS[name]}"), name)
    raise AttributeError(f"module 'thresher' has no attribute {name!r}")


__all__ = [
    "DataSpec",
    "FilterSettings",
    "ReduceSettings",
    "ThresherError",
    "__version__",
    "compare_run",
    "diagnose_run",
    "embed_run",
    "evaluate_cutoff",
    "evaluate_run",
    "export_run",
    "labels_run",
    "load_filter",
    "open_run",
    "reduce_run",
    "run_filter",
    "train_run",
]
