"""Workflows over run directories: one module per step, the API that the CLI and the app call.

A workflow reads a run directory (:mod:`thresher.store`), calls the domain packages (arrays in,
results out), writes the step's files and records the step in the manifest. The step modules:

========== =================================================================================
run        open a run; rebuild its data, model, transform and recipe
train      ``train_run``: a model on a data set, into a new run directory
embed      ``embed_run``: a layer's embeddings, cached in the run (local or Ray engine)
evaluate   ``evaluate_run``: retrain on a subset with N seeds, resumable per seed
filter     ``run_filter``: outliers and near-duplicates, stored per tag
export     ``export_run``: the kept set as ids, a folder or an index
compare    ``compare_run``: every method at every kept share, paired with random
labels     ``labels_run``: label issues by confident learning
diagnose   ``diagnose_run``: the registered analyses of imbalanced data
reduce     ``reduce_run`` and ``evaluate_cutoff``: the LRP-GUS search and its Tables 4-5
========== =================================================================================
"""

from thresher.workflows.compare import CompareTable, compare_methods, compare_run, subset_for
from thresher.workflows.diagnose import diagnose_run, load_result, stored_analyses
from thresher.workflows.embed import embed_run
from thresher.workflows.evaluate import evaluate_run, random_like
from thresher.workflows.export import EXPORT_FORMATS, export_run
from thresher.workflows.filter import FilterSettings, load_filter, run_filter
from thresher.workflows.labels import labels_run, load_label_issues
from thresher.workflows.reduce import (
    CutoffEvaluation,
    ReduceResult,
    ReduceSettings,
    evaluate_cutoff,
    load_reduction,
    load_trace,
    reduce_run,
)
from thresher.workflows.run import DataSpec, open_run, run_dataset, run_model, run_recipe
from thresher.workflows.train import TrainRunResult, train_run

__all__ = [
    "EXPORT_FORMATS",
    "CompareTable",
    "CutoffEvaluation",
    "DataSpec",
    "FilterSettings",
    "ReduceResult",
    "ReduceSettings",
    "TrainRunResult",
    "compare_methods",
    "compare_run",
    "diagnose_run",
    "embed_run",
    "evaluate_cutoff",
    "evaluate_run",
    "export_run",
    "labels_run",
    "load_filter",
    "load_label_issues",
    "load_reduction",
    "load_result",
    "load_trace",
    "open_run",
    "random_like",
    "reduce_run",
    "run_dataset",
    "run_filter",
    "run_model",
    "run_recipe",
    "stored_analyses",
    "subset_for",
    "train_run",
]
