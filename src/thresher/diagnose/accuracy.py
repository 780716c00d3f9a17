"""Per-class accuracy against the class imbalance level (Fig. 2 of Dablain et al.)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose._result import DiagnosticResult
from thresher.errors import DataError
from thresher.validation import check_labels, resolve_classes


@dataclass(frozen=True)
class ClassAccuracyResult(DiagnosticResult):
    """Attributes:
    classes: ``(C,)`` class names.
    accuracy: ``(C,)`` share of each class's evaluation items predicted right (NaN: none).
    support: ``(C,)`` evaluation items per class.
    train_counts: ``(C,)`` training items per class.
    imbalance: ``(C,)`` ``train_counts / max(train_counts)`` (1 = the largest class).
    """

    classes: tuple[str, ...]
    accuracy: np.ndarray
    support: np.ndarray
    train_counts: np.ndarray
    imbalance: np.ndarray

    _int_arrays = ("support", "train_counts")
    _float_arrays = ("accuracy", "imbalance")

    @property
    def max_ratio(self) -> float:
        """Largest over smallest non-empty training class."""
        present = self.train_counts[self.train_counts > 0]
        return float(present.max() / present.min()) if present.size else float("nan")

    def summary(self) -> dict[str, Any]:
        acc = self.accuracy[~np.isnan(self.accuracy)]
        return {
            "imbalance_ratio": self.max_ratio,
            "balanced_accuracy": float(acc.mean()) if acc.size else float("nan"),
        }

    def table(self) -> list[list[str]]:
        rows = [["class", "train items", "imbalance", "test items", "accuracy"]]
        for c in np.argsort(-self.train_counts, kind="stable"):
            a = self.accuracy[c]
            rows.append(
                [
                    self.classes[c],
                    str(int(self.train_counts[c])),
                    f"{self.imbalance[c]:.3f}",
                    str(int(self.support[c])),
                    "-" if np.isnan(a) else f"{100 * a:.1f}%",
                ]
            )
        return rows


def class_accuracy(
    labels: np.ndarray | None,
    predictions: np.ndarray | None,
    *,
    train_labels: np.ndarray | None,
    classes: tuple[str, ...] | list[str] | None = None,
) -> ClassAccuracyResult:
    """Accuracy of every class on an evaluation split next to its training share.

    Parameters
    ----------
    labels, predictions : ``(M,)`` true and predicted classes of the evaluation split.
    train_labels : ``(N,)`` training labels (the imbalance level).
    classes : class names.
    """
    if predictions is None:
        raise DataError("per-class accuracy needs the model's predictions; pass them")
    m = np.shape(labels)[0] if labels is not None and np.ndim(labels) else 0
    y = check_labels(labels, n=m)
    p = check_labels(predictions, n=m, what="predictions")
    train = check_labels(
        train_labels,
        n=np.shape(train_labels)[0] if train_labels is not None else 0,
        what="training labels",
    )
    if train.size == 0:
        raise DataError("no training labels; the imbalance level needs the training split")
    names = resolve_classes(np.concatenate([y, p, train]), classes)
    c = len(names)
    support = np.bincount(y, minlength=c)
    right = np.bincount(y[y == p], minlength=c)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, right / np.maximum(support, 1), np.nan)
    counts = np.bincount(train, minlength=c)
    return ClassAccuracyResult(
        classes=names,
        accuracy=accuracy.astype(np.float64),
        support=support.astype(np.int64),
        train_counts=counts.astype(np.int64),
        imbalance=counts / counts.max(),
    )
