"""LRP-GUS: the relevance-guided class-proportion search (seed 000), its cutoff and tables."""

from thresher.lrp_gus.cutoff import Cutoff, choose_cutoff, knee_iteration, parse_rule
from thresher.lrp_gus.search import (
    CHOICES,
    IterationRecord,
    Score,
    Scorer,
    SearchSettings,
    SearchState,
    SearchTrace,
    balanced_counts,
    balanced_positions,
    propose,
    run_search,
)
from thresher.lrp_gus.trace import DirCheckpoint

__all__ = [
    "CHOICES",
    "Cutoff",
    "DirCheckpoint",
    "IterationRecord",
    "Score",
    "Scorer",
    "SearchSettings",
    "SearchState",
    "SearchTrace",
    "balanced_counts",
    "balanced_positions",
    "choose_cutoff",
    "knee_iteration",
    "parse_rule",
    "propose",
    "run_search",
]
