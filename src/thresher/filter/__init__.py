"""Dataset filtering (thesis, seed 002): outliers and semantic near-duplicates at exact
percentages, seen through a model's embeddings, plus the random and uniqueness baselines.

Registries (names for the CLI and the app): :data:`PROJECTIONS`, :data:`OUTLIER_SCORES`,
:data:`DUPLICATE_METHODS`, :data:`SELECTORS` (records: a new selector is one decorated score
function, :func:`register_selector`).
"""

from thresher.filter import dynamics as _dynamics  # noqa: F401  (registers el2n, grand, forgetting)
from thresher.filter import pruning as _pruning  # noqa: F401  (registers kcenter, herding, ssp)
from thresher.filter.baselines import (
    SELECTORS,
    SelectionInput,
    Selector,
    random_subset,
    register_selector,
    select,
    uniqueness,
    uniqueness_scores,
)
from thresher.filter.budgets import Budget, apportion, global_budget, per_class_budgets
from thresher.filter.duplicates import (
    AUTO_EXACT_MAX,
    DUPLICATE_METHODS,
    DuplicateClusters,
    find_duplicates,
)
from thresher.filter.outliers import OUTLIER_SCORES, OutlierScores, outlier_scores, select_top
from thresher.filter.pipeline import filter_dataset
from thresher.filter.projection import PROJECTIONS, project, target_dims
from thresher.filter.result import FILTER_REASONS, FilterResult, reasons

__all__ = [
    "AUTO_EXACT_MAX",
    "DUPLICATE_METHODS",
    "FILTER_REASONS",
    "OUTLIER_SCORES",
    "PROJECTIONS",
    "SELECTORS",
    "Budget",
    "DuplicateClusters",
    "FilterResult",
    "OutlierScores",
    "SelectionInput",
    "Selector",
    "apportion",
    "filter_dataset",
    "find_duplicates",
    "global_budget",
    "outlier_scores",
    "per_class_budgets",
    "project",
    "random_subset",
    "reasons",
    "register_selector",
    "select",
    "select_top",
    "target_dims",
    "uniqueness",
    "uniqueness_scores",
]
