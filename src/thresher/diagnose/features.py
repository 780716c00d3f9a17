"""Top-K feature embeddings per class and their overlap (Algorithm 2, Fig. 6), and the feature
density of a reference class against every adversary class (Algorithm 3, Fig. 10).

Ranking is by value (the embeddings of a ReLU network are non-negative magnitudes), largest
first; ties go to the lower feature index (a stable sort), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose._result import DiagnosticResult
from thresher.errors import ConfigError
from thresher.validation import (
    check_embeddings,
    check_k,
    check_labels,
    check_reference,
    check_several_classes,
    resolve_classes,
)


def _check_top_k(top_k: int, dim: int) -> int:
    top_k = check_k(top_k, name="top_k")
    if top_k > dim:
        raise ConfigError(
            f"top_k = {top_k} exceeds the {dim} embedding features; lower --top-k to <= {dim}"
        )
    return top_k


def top_indices(rows: np.ndarray, *, k: int) -> np.ndarray:
    """``(N, k)`` column indices of each row's ``k`` largest values, largest first (ties: lower
    index first)."""
    return np.argsort(-np.asarray(rows), axis=-1, kind="stable")[..., :k]


def class_means(values: np.ndarray, labels: np.ndarray, *, num_classes: int) -> np.ndarray:
    """``(C, D)`` float64 mean embedding per class (NaN rows for absent classes)."""
    sums = np.zeros((num_classes, values.shape[1]))
    np.add.at(sums, labels, values.astype(np.float64))
    counts = np.bincount(labels, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


@dataclass(frozen=True)
class TopFeaturesResult(DiagnosticResult):
    """Algorithm 2.

    Attributes:
        classes: ``(C,)`` class names.
        top_k: features kept per class.
        indices: ``(C, top_k)`` feature indices by decreasing class-mean value (-1: absent class).
        means: ``(C, top_k)`` their class means.
        share: ``(C, top_k)`` each mean over the sum of the class's top-K means (Fig. 6 heights).
        overlap: ``(C, C)`` number of shared top-K features between two classes.
    """

    classes: tuple[str, ...]
    top_k: int
    indices: np.ndarray
    means: np.ndarray
    share: np.ndarray
    overlap: np.ndarray

    _int_arrays = ("indices", "overlap")
    _float_arrays = ("means", "share")

    def summary(self) -> dict[str, Any]:
        off = self.overlap.copy()
        np.fill_diagonal(off, -1)
        i, j = np.unravel_index(int(np.argmax(off)), off.shape)
        return {
            "top_k": self.top_k,
            "most_overlapping": [self.classes[i], self.classes[j], int(self.overlap[i, j])],
        }

    def table(self) -> list[list[str]]:
        rows = [["class", f"top-{self.top_k} features (largest first)"]]
        for c, name in enumerate(self.classes):
            rows.append([name, " ".join(str(int(v)) for v in self.indices[c] if v >= 0)])
        return rows


def top_features(
    values: np.ndarray,
    labels: np.ndarray | None,
    *,
    top_k: int = 10,
    classes: tuple[str, ...] | list[str] | None = None,
) -> TopFeaturesResult:
    """The ``top_k`` features with the largest class-mean embedding, per class, and overlaps.

    Parameters
    ----------
    values : ``(N, D)`` feature embeddings.
    labels : ``(N,)`` classes.
    top_k : features per class (<= D).
    classes : class names.
    """
    x = check_embeddings(values)
    y = check_labels(labels, n=x.shape[0], num_classes=len(classes) if classes else None)
    names = resolve_classes(y, classes)
    check_several_classes(y, what="top-K feature overlap")
    top_k = _check_top_k(top_k, x.shape[1])
    c = len(names)
    means = class_means(x, y, num_classes=c)
    present = ~np.isnan(means[:, 0])
    idx = np.full((c, top_k), -1, dtype=np.int64)
    idx[present] = top_indices(means[present], k=top_k)
    top_means = np.full((c, top_k), np.nan)
    top_means[present] = np.take_along_axis(means[present], idx[present], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = top_means / top_means.sum(axis=1, keepdims=True)
    member = np.zeros((c, x.shape[1]), dtype=np.int64)
    for r in np.flatnonzero(present):
        member[r, idx[r]] = 1
    return TopFeaturesResult(
        classes=names,
        top_k=top_k,
        indices=idx,
        means=top_means,
        share=share,
        overlap=member @ member.T,
    )


@dataclass(frozen=True)
class FeatureDensityResult(DiagnosticResult):
    """Algorithm 3 for one reference class.

    Attributes:
        classes: ``(C,)`` class names.
        reference: the reference class's index.
        top_k: K of the top-K sets.
        features: ``(top_k,)`` the reference class's top-K features (Algorithm 2).
        class_sizes: ``(C,)`` items per class.
        counts: ``(C, top_k)`` items of each class whose own top-K features include each of
            the reference's features.
        density: ``(C, top_k)`` ``counts / class_sizes[reference]`` (Algorithm 3).
        ratio_to_reference: ``(C, top_k)`` ``counts / counts[reference]`` (the paper's prose
            "appears 30.8 times more frequently"), NaN where the reference count is 0.
    """

    classes: tuple[str, ...]
    reference: int
    top_k: int
    features: np.ndarray
    class_sizes: np.ndarray
    counts: np.ndarray
    density: np.ndarray
    ratio_to_reference: np.ndarray

    _int_arrays = ("features", "class_sizes", "counts")
    _float_arrays = ("density", "ratio_to_reference")

    def summary(self) -> dict[str, Any]:
        total = self.density.sum(axis=1)
        total[self.reference] = -np.inf
        return {
            "reference": self.classes[self.reference],
            "features": [int(f) for f in self.features],
            "densest_adversary": self.classes[int(np.argmax(total))],
        }

    def table(self) -> list[list[str]]:
        rows = [["class", "items", *(f"FE {int(f)}" for f in self.features), "total"]]
        for c, name in enumerate(self.classes):
            rows.append(
                [name + (" (reference)" if c == self.reference else ""), str(self.class_sizes[c])]
                + [f"{v:.3g}" for v in self.density[c]]
                + [f"{self.density[c].sum():.3g}"]
            )
        return rows


def feature_density(
    values: np.ndarray,
    labels: np.ndarray | None,
    *,
    reference: int | str,
    top_k: int = 10,
    classes: tuple[str, ...] | list[str] | None = None,
    chunk: int = 65_536,
) -> FeatureDensityResult:
    """How often each of the reference class's top-K features is among an item's own top-K,
    counted per class (Algorithm 3).

    Parameters
    ----------
    values : ``(N, D)`` feature embeddings.
    labels : ``(N,)`` classes.
    reference : reference class (index or name).
    top_k : K of the top-K sets.
    classes : class names.
    chunk : rows ranked at a time (bounds memory).
    """
    x = check_embeddings(values)
    y = check_labels(labels, n=x.shape[0], num_classes=len(classes) if classes else None)
    names = resolve_classes(y, classes)
    check_several_classes(y, what="feature density")
    top_k = _check_top_k(top_k, x.shape[1])
    ref = check_reference(reference, names)
    c = len(names)
    sizes = np.bincount(y, minlength=c)
    if sizes[ref] == 0:
        raise ConfigError(
            f"reference class {names[ref]!r} has no items; pick a class present in the data"
        )
    means = class_means(x, y, num_classes=c)
    features = top_indices(means[ref], k=top_k)
    position = np.full(x.shape[1], -1, dtype=np.int64)
    position[features] = np.arange(top_k)
    counts = np.zeros((c, top_k), dtype=np.int64)
    for a in range(0, x.shape[0], chunk):
        own = top_indices(x[a : a + chunk], k=top_k)  # (B, top_k)
        pos = position[own]
        hit = pos >= 0
        rows = np.broadcast_to(y[a : a + chunk, None], own.shape)[hit]
        np.add.at(counts, (rows, pos[hit]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(counts[ref] > 0, counts / np.maximum(counts[ref], 1), np.nan)
    return FeatureDensityResult(
        classes=names,
        reference=ref,
        top_k=top_k,
        features=features.astype(np.int64),
        class_sizes=sizes.astype(np.int64),
        counts=counts,
        density=counts / sizes[ref],
        ratio_to_reference=ratio,
    )
