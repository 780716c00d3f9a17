"""Classification metrics of one model on a test set (scikit-learn), and class alignment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from thresher.data.types import ImageDataset


@dataclass(frozen=True)
class ClassMetrics:
    """One model's test metrics over ``K`` classes.

    Attributes:
        accuracy: fraction of test images predicted right.
        precision, recall, f1: ``(K,)`` per class (0 where undefined, e.g. never predicted).
        confusion: ``(K, K)`` counts, rows = true class, columns = predicted class.
    """

    accuracy: float
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    confusion: np.ndarray


def class_metrics(y_true: np.ndarray, y_pred: np.ndarray, *, num_classes: int) -> ClassMetrics:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix over ``num_classes``."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(num_classes)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return ClassMetrics(
        accuracy=float(np.mean(y_true == y_pred)),
        precision=np.asarray(precision, dtype=np.float64),
        recall=np.asarray(recall, dtype=np.float64),
        f1=np.asarray(f1, dtype=np.float64),
        confusion=confusion_matrix(y_true, y_pred, labels=labels).astype(np.int64),
    )


@dataclass(frozen=True)
class ClassAlignment:
    """Test labels expressed in the training label space (extended by unseen test classes).

    Attributes:
        classes: the label space: the training classes, then test classes the training set lacks.
        test_labels: ``(N_test,)`` test labels in that space.
        unseen: names of test classes that are not training classes.
    """

    classes: tuple[str, ...]
    test_labels: np.ndarray
    unseen: tuple[str, ...]


def align_classes(train: ImageDataset, test: ImageDataset) -> ClassAlignment:
    """Match test classes to training classes by name, or by index when either side only has
    the default names ``"0".."K-1"`` (e.g. arrays loaded without class names)."""
    y_test = test.require_labels("evaluation")
    if test.classes == train.classes:
        return ClassAlignment(train.classes, y_test, ())
    if _default_names(train.classes) or _default_names(test.classes):
        extra = tuple(test.classes[train.num_classes :])
        return ClassAlignment(train.classes + extra, y_test, extra)
    space = list(train.classes)
    for name in test.classes:
        if name not in space:
            space.append(name)
    mapping = np.array([space.index(name) for name in test.classes], dtype=np.int64)
    unseen = tuple(name for name in test.classes if name not in train.classes)
    return ClassAlignment(tuple(space), mapping[y_test], unseen)


def _default_names(classes: tuple[str, ...]) -> bool:
    return classes == tuple(str(i) for i in range(len(classes)))
