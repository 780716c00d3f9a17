"""The result of retraining models on a subset: per-seed metrics and their mean and spread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from thresher.train.recipes import Recipe


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """``S`` models (one per seed) trained on a subset and tested on a test set.

    Attributes:
        model: architecture name (or the module's class name).
        recipe: the training recipe.
        seeds: ``(S,)`` seeds, in row order.
        classes: ``K`` class names of the metrics (training classes, then any test-only ones).
        train_size: images in the full training set.
        subset_size: images the models trained on.
        test_size: test images.
        accuracy: ``(S,)`` test accuracy per seed.
        precision, recall, f1: ``(S, K)`` per seed and class.
        confusion: ``(S, K, K)`` per seed; rows = true class, columns = predicted.
        support: ``(K,)`` test images per class.
        subset_class_counts: ``(K,)`` training images per class in the subset.
        train_seconds: ``(S,)`` training wall time per seed (stacked models share theirs).
        stacked: whether the models were trained stacked.
        warnings: problems that did not stop the evaluation (e.g. classes never trained on).
        models: the trained models when asked for (``keep_models=True``), else empty.
    """

    model: str
    recipe: Recipe
    seeds: tuple[int, ...]
    classes: tuple[str, ...]
    train_size: int
    subset_size: int
    test_size: int
    accuracy: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    confusion: np.ndarray
    support: np.ndarray
    subset_class_counts: np.ndarray
    train_seconds: np.ndarray
    stacked: bool = False
    warnings: tuple[str, ...] = ()
    models: tuple[nn.Module, ...] = field(default=(), repr=False)

    # --- aggregates ----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def compression(self) -> float:
        """``1 - |subset| / |train|`` (the papers' ``r``)."""
        return 1.0 - self.subset_size / self.train_size

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean(self.accuracy))

    @property
    def accuracy_std(self) -> float:
        """Sample standard deviation over seeds (``ddof=1``; 0 for one seed)."""
        return _std(self.accuracy)

    @property
    def f1_mean(self) -> np.ndarray:
        """``(K,)`` per-class F1, mean over seeds."""
        return self.f1.mean(axis=0)

    @property
    def f1_std(self) -> np.ndarray:
        """``(K,)`` per-class F1, sample standard deviation over seeds."""
        return _std(self.f1)

    @property
    def macro_f1(self) -> np.ndarray:
        """``(S,)`` unweighted mean of the per-class F1 of each seed."""
        return self.f1.mean(axis=1)

    def summary(self) -> str:
        """``"acc 98.91 +- 0.12 % (n=5)"``."""
        return f"acc {100 * self.accuracy_mean:.2f} +- {100 * self.accuracy_std:.2f} % (n={self.n})"

    # --- per-seed pieces (resumable evaluations) ------------------------------------------------
    def seed_result(self, seed: int) -> EvaluationResult:
        """The one-seed result of ``seed`` (a row of this one), without models."""
        if seed not in self.seeds:
            raise KeyError(f"seed {seed} is not in this result (seeds {list(self.seeds)})")
        i = self.seeds.index(seed)
        return replace(
            self,
            seeds=(seed,),
            accuracy=self.accuracy[i : i + 1],
            precision=self.precision[i : i + 1],
            recall=self.recall[i : i + 1],
            f1=self.f1[i : i + 1],
            confusion=self.confusion[i : i + 1],
            train_seconds=self.train_seconds[i : i + 1],
            models=(),
        )

    @classmethod
    def merge(cls, parts: Sequence[EvaluationResult]) -> EvaluationResult:
        """One result from results of the same evaluation on disjoint seeds, in the given order.

        Raises ``ValueError`` when the parts differ in anything but their seeds."""
        if not parts:
            raise ValueError("nothing to merge")
        first = parts[0]
        for p in parts[1:]:
            same = (
                p.model == first.model
                and p.recipe == first.recipe
                and p.classes == first.classes
                and (p.train_size, p.subset_size, p.test_size)
                == (first.train_size, first.subset_size, first.test_size)
                and np.array_equal(p.support, first.support)
                and np.array_equal(p.subset_class_counts, first.subset_class_counts)
            )
            if not same:
                raise ValueError("the parts are not the same evaluation (model, recipe or data)")
        seeds = tuple(s for p in parts for s in p.seeds)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"the parts repeat a seed ({list(seeds)})")
        warnings = tuple(dict.fromkeys(w for p in parts for w in p.warnings))
        return replace(
            first,
            seeds=seeds,
            accuracy=np.concatenate([p.accuracy for p in parts]),
            precision=np.concatenate([p.precision for p in parts]),
            recall=np.concatenate([p.recall for p in parts]),
            f1=np.concatenate([p.f1 for p in parts]),
            confusion=np.concatenate([p.confusion for p in parts]),
            train_seconds=np.concatenate([p.train_seconds for p in parts]),
            stacked=all(p.stacked for p in parts),
            warnings=warnings,
            models=tuple(m for p in parts for m in p.models),
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict` (without models)."""
        return cls(
            model=str(d["model"]),
            recipe=Recipe.from_dict(d["recipe"]),
            seeds=tuple(int(s) for s in d["seeds"]),
            classes=tuple(str(c) for c in d["classes"]),
            train_size=int(d["train_size"]),
            subset_size=int(d["subset_size"]),
            test_size=int(d["test_size"]),
            accuracy=np.asarray(d["accuracy"], dtype=np.float64),
            precision=np.asarray(d["precision"], dtype=np.float64),
            recall=np.asarray(d["recall"], dtype=np.float64),
            f1=np.asarray(d["f1"], dtype=np.float64),
            confusion=np.asarray(d["confusion"], dtype=np.int64),
            support=np.asarray(d["support"], dtype=np.int64),
            subset_class_counts=np.asarray(d["subset_class_counts"], dtype=np.int64),
            train_seconds=np.asarray(d["train_seconds"], dtype=np.float64),
            stacked=bool(d["stacked"]),
            warnings=tuple(d.get("warnings", ())),
        )

    # --- export --------------------------------------------------------------------------------
    def to_table(self) -> Any:
        """A ``pyarrow.Table``, one row per seed; per-class values are list columns in the order
        of ``classes`` (stored in the schema metadata under ``classes``)."""
        import pyarrow as pa

        s = self.n
        table = pa.table(
            {
                "seed": pa.array(self.seeds, type=pa.int64()),
                "accuracy": pa.array(self.accuracy, type=pa.float64()),
                "macro_f1": pa.array(self.macro_f1, type=pa.float64()),
                "precision": pa.array(self.precision.tolist(), type=pa.list_(pa.float64())),
                "recall": pa.array(self.recall.tolist(), type=pa.list_(pa.float64())),
                "f1": pa.array(self.f1.tolist(), type=pa.list_(pa.float64())),
                "confusion": pa.array(self.confusion.tolist(), type=pa.list_(pa.list_(pa.int64()))),
                "train_seconds": pa.array(self.train_seconds, type=pa.float64()),
                "subset_size": pa.array([self.subset_size] * s, type=pa.int64()),
                "compression": pa.array([self.compression] * s, type=pa.float64()),
            }
        )
        return table.replace_schema_metadata(
            {"classes": json.dumps(list(self.classes)), "model": self.model}
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: parameters, per-seed values and the aggregates."""
        return {
            "model": self.model,
            "recipe": self.recipe.to_dict(),
            "seeds": list(self.seeds),
            "classes": list(self.classes),
            "train_size": self.train_size,
            "subset_size": self.subset_size,
            "test_size": self.test_size,
            "compression": self.compression,
            "stacked": self.stacked,
            "warnings": list(self.warnings),
            "accuracy": self.accuracy.tolist(),
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "f1": self.f1.tolist(),
            "f1_mean": self.f1_mean.tolist(),
            "f1_std": self.f1_std.tolist(),
            "confusion": self.confusion.tolist(),
            "support": self.support.tolist(),
            "subset_class_counts": self.subset_class_counts.tolist(),
            "train_seconds": self.train_seconds.tolist(),
            "summary": self.summary(),
        }


def _std(values: np.ndarray) -> Any:
    if values.shape[0] < 2:
        return 0.0 if values.ndim == 1 else np.zeros(values.shape[1:])
    out = np.std(values, axis=0, ddof=1)
    return float(out) if values.ndim == 1 else out
