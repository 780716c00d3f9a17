"""Class archetypes (Napierala & Stefanowski, as used by Dablain et al.): safe, border, rare,
outlier from the number of same-class items among an item's K nearest neighbours in
feature-embedding space, with the share of true positives and a medoid prototype per group.

For K = 5 (the paper): 4-5 same-class neighbours = safe, 2-3 = border, 1 = rare, 0 = outlier.
For other K the thresholds scale with K: safe when ``n_same >= 0.8 K``, border when
``n_same >= 0.4 K``, rare when ``n_same >= 1``, outlier when ``n_same == 0`` (K = 10: safe
8-10, border 4-7, rare 1-3, outlier 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose._result import DiagnosticResult
from thresher.errors import DataError
from thresher.neighbours import nearest_neighbours
from thresher.validation import (
    check_class_sizes,
    check_embeddings,
    check_k,
    check_labels,
    check_several_classes,
    resolve_classes,
)

ARCHETYPES = ("safe", "border", "rare", "outlier")
SAFE, BORDER, RARE, OUTLIER = range(4)
#: medoids are exact up to this many items per group; larger groups use a seeded sample
MEDOID_EXACT_MAX = 4096


def archetype_codes(same_class: np.ndarray, *, k: int) -> np.ndarray:
    """``(N,)`` int8 archetype codes (index into :data:`ARCHETYPES`) from same-class counts.

    Integer arithmetic keeps the K = 5 boundaries exact: safe ``5 n >= 4 K``, border
    ``5 n >= 2 K``, rare ``n >= 1``, else outlier.
    """
    k = check_k(k)
    n = np.asarray(same_class, dtype=np.int64)
    if n.size and (n.min() < 0 or n.max() > k):
        raise DataError(f"same-class neighbour counts must lie in [0, {k}]; count them over k")
    codes = np.full(n.shape, OUTLIER, dtype=np.int8)
    codes[n >= 1] = RARE
    codes[5 * n >= 2 * k] = BORDER
    codes[5 * n >= 4 * k] = SAFE
    codes[n == 0] = OUTLIER
    return codes


def same_class_counts(labels: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """``(N,)`` number of each item's neighbours ``(N, K)`` that share its label."""
    labels = np.asarray(labels)
    return (labels[neighbours] == labels[:, None]).sum(axis=1).astype(np.int64)


def medoid_index(values: np.ndarray, *, seed: int = 0, exact_max: int = MEDOID_EXACT_MAX) -> int:
    """Row of ``values`` ``(M, D)`` with the smallest summed Euclidean distance to the others.

    Exact for ``M <= exact_max``; above, candidates and the points they are scored against are
    a seeded sample of ``exact_max`` rows each (O(exact_max^2) work, whatever ``M``).
    """
    m = values.shape[0]
    if m == 0:
        raise DataError("a medoid needs at least one item")
    if m <= 2:
        return 0
    rows = np.arange(m)
    if m > exact_max:
        rows = np.sort(np.random.default_rng(seed).choice(m, size=exact_max, replace=False))
    x = np.asarray(values[rows], dtype=np.float64)
    sq = (x * x).sum(axis=1)
    totals = np.empty(len(rows))
    step = 1024
    for a in range(0, len(rows), step):
        d2 = sq[a : a + step, None] + sq[None, :] - 2.0 * (x[a : a + step] @ x.T)
        totals[a : a + step] = np.sqrt(np.maximum(d2, 0.0)).sum(axis=1)
    return int(rows[int(np.argmin(totals))])


@dataclass(frozen=True)
class ArchetypeResult(DiagnosticResult):
    """Archetypes of every item and their summary per class.

    Attributes:
        k: neighbours per item.
        classes: ``(C,)`` class names.
        ids: ``(N,)`` item ids.
        labels: ``(N,)`` true classes.
        same_class: ``(N,)`` same-class neighbours among the K.
        archetype: ``(N,)`` codes into :data:`ARCHETYPES`.
        correct: ``(N,)`` 1 when the model's prediction is right, 0 if wrong, -1 unknown.
        counts: ``(C, 4)`` items per class and archetype.
        true_positives: ``(C, 4)`` correctly predicted items per class and archetype
            (all -1 without predictions).
        prototype: ``(C, 4)`` row of each group's medoid, -1 for an empty group.
    """

    k: int
    classes: tuple[str, ...]
    ids: tuple[str, ...]
    labels: np.ndarray
    same_class: np.ndarray
    archetype: np.ndarray
    correct: np.ndarray
    counts: np.ndarray
    true_positives: np.ndarray
    prototype: np.ndarray

    _int_arrays = (
        "labels",
        "same_class",
        "archetype",
        "correct",
        "counts",
        "true_positives",
        "prototype",
    )

    @property
    def tp_share(self) -> np.ndarray:
        """``(C, 4)`` share of true positives per group (NaN for empty groups or no
        predictions): the paper's Fig. 3."""
        with np.errstate(invalid="ignore", divide="ignore"):
            share = self.true_positives / self.counts
        share = share.astype(np.float64)
        share[(self.counts == 0) | (self.true_positives < 0)] = np.nan
        return share

    @property
    def empty_groups(self) -> list[tuple[str, str]]:
        """``(class, archetype)`` pairs with no items (reported, never an error)."""
        return [
            (self.classes[c], ARCHETYPES[a])
            for c, a in zip(*np.nonzero(self.counts == 0), strict=True)
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "items": len(self.ids),
            "counts": {
                self.classes[c]: dict(zip(ARCHETYPES, map(int, self.counts[c]), strict=True))
                for c in range(len(self.classes))
            },
            "empty_groups": [f"{c}/{a}" for c, a in self.empty_groups],
        }

    def table(self) -> list[list[str]]:
        """Rows (header first): class, archetype, items, true-positive share, prototype id."""
        rows = [["class", "archetype", "items", "TP share", "prototype"]]
        share = self.tp_share
        for c, name in enumerate(self.classes):
            for a, arch in enumerate(ARCHETYPES):
                proto = int(self.prototype[c, a])
                rows.append(
                    [
                        name,
                        arch,
                        str(int(self.counts[c, a])),
                        "-" if np.isnan(share[c, a]) else f"{100 * share[c, a]:.1f}%",
                        "(empty)" if proto < 0 else self.ids[proto],
                    ]
                )
        return rows

    def item_table(self) -> dict[str, Any]:
        """Per-item columns for Parquet."""
        return {
            "id": np.asarray(self.ids, dtype=str),
            "label": self.labels,
            "same_class_neighbours": self.same_class,
            "archetype": np.asarray([ARCHETYPES[a] for a in self.archetype], dtype=str),
            "correct": self.correct,
        }


def archetypes(
    values: np.ndarray,
    labels: np.ndarray | None,
    *,
    predictions: np.ndarray | None = None,
    k: int = 5,
    ids: np.ndarray | list[str] | None = None,
    classes: tuple[str, ...] | list[str] | None = None,
    neighbours: np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> ArchetypeResult:
    """Safe/border/rare/outlier archetypes of every item from its K nearest neighbours.

    Parameters
    ----------
    values : ``(N, D)`` feature embeddings (penultimate layer).
    labels : ``(N,)`` true classes (required).
    predictions : ``(N,)`` the model's predictions, for the true-positive shares (optional).
    k : neighbours per item (self excluded); every class needs at least ``k + 1`` items.
    ids : ``(N,)`` item ids (default ``"0"``, ``"1"``, ...).
    classes : class names (default the label numbers).
    neighbours : precomputed ``(N, k)`` neighbour rows (from :func:`nearest_neighbours`).
    seed : for the medoid sample of very large groups.
    threads : faiss threads.

    Returns
    -------
    ArchetypeResult
    """
    k = check_k(k)
    x = check_embeddings(values)
    n = x.shape[0]
    y = check_labels(labels, n=n, num_classes=len(classes) if classes else None)
    names = resolve_classes(y, classes)
    check_several_classes(y, what="archetypes")
    check_class_sizes(y, names, k=k)
    item_ids = tuple(str(i) for i in (ids if ids is not None else range(n)))
    if len(item_ids) != n:
        raise DataError(f"{len(item_ids)} ids for {n} embeddings; give one id per row")
    if predictions is not None:
        pred = check_labels(predictions, n=n, what="predictions")
        correct = (pred == y).astype(np.int64)
    else:
        correct = np.full(n, -1, dtype=np.int64)
    if neighbours is None:
        neighbours = nearest_neighbours(x, k=k, threads=threads)
    elif neighbours.shape != (n, k):
        raise DataError(f"neighbours have shape {neighbours.shape}, expected ({n}, {k})")
    same = same_class_counts(y, neighbours)
    codes = archetype_codes(same, k=k)
    num_classes = len(names)
    group = y * 4 + codes
    counts = np.bincount(group, minlength=num_classes * 4).reshape(num_classes, 4)
    if predictions is not None:
        tp = np.bincount(group, weights=correct, minlength=num_classes * 4)
        true_positives = tp.reshape(num_classes, 4).astype(np.int64)
    else:
        true_positives = np.full((num_classes, 4), -1, dtype=np.int64)
    prototype = np.full((num_classes, 4), -1, dtype=np.int64)
    order = np.argsort(group, kind="stable")
    starts = np.searchsorted(group[order], np.arange(num_classes * 4 + 1))
    for g in range(num_classes * 4):
        members = order[starts[g] : starts[g + 1]]
        if members.size:
            prototype[g // 4, g % 4] = members[medoid_index(x[members], seed=seed + g)]
    return ArchetypeResult(
        k=k,
        classes=names,
        ids=item_ids,
        labels=y,
        same_class=same,
        archetype=codes.astype(np.int64),
        correct=correct,
        counts=counts,
        true_positives=true_positives,
        prototype=prototype,
    )
