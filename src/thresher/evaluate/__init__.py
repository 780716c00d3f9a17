"""Check a subset: retrain models on it with several seeds, report accuracy and per-class F1."""

from thresher.evaluate.metrics import ClassMetrics, align_classes, class_metrics
from thresher.evaluate.result import EvaluationResult
from thresher.evaluate.retrain import evaluate, evaluate_trained

__all__ = [
    "ClassMetrics",
    "EvaluationResult",
    "align_classes",
    "class_metrics",
    "evaluate",
    "evaluate_trained",
]
