"""Baselines the thesis compares against: random subsampling and FiftyOne's uniqueness.

Both keep ``floor(keep x N)`` items (the same count as the filter keeps when
``keep = 1 - outliers - similar``); ``stratified=True`` shares that count over the classes
as :func:`thresher.filter.budgets.apportion` does (largest remainder, totals exact).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.filter.budgets import apportion, floor_count
from thresher.filter.inputs import as_ids, as_per_sample, check_fraction, unpack
from thresher.filter.neighbours import NeighbourIndex
from thresher.filter.outliers import select_top
from thresher.filter.result import FilterResult
from thresher.registry import Registry

Baseline = Callable[..., FilterResult]
BASELINES: Registry[Baseline] = Registry("baseline", error=ConfigError)

UNIQUENESS_WEIGHTS = (0.6, 0.3, 0.1)


def _n_keep(n: int, keep: float) -> int:
    keep = check_fraction(keep, name="keep", upper_inclusive=True)
    count = floor_count(keep * n)
    if count < 1:
        raise ConfigError(f"keep={keep:g} of {n} items keeps none; raise keep")
    return count


def _remove_highest(
    score: np.ndarray,
    ids: np.ndarray,
    *,
    n_keep: int,
    keep: float,
    labels: np.ndarray | None,
    stratified: bool,
) -> np.ndarray:
    """``(N,)`` bool kept mask: the highest scores go, globally or within each class."""
    n = score.shape[0]
    if not stratified:
        return ~select_top(score, ids, n - n_keep)
    if labels is None:
        raise ConfigError("stratified=True needs labels; pass labels or stratified=False")
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    quota = apportion(n_keep, keep * sizes, lower=np.minimum(sizes, 1), upper=sizes)
    kept = np.zeros(n, dtype=bool)
    for c in range(classes.shape[0]):
        rows = np.flatnonzero(inverse == c)
        kept[rows] = ~select_top(score[rows], ids[rows], rows.shape[0] - int(quota[c]))
    return kept


def _result(
    ids: np.ndarray,
    kept: np.ndarray,
    score: np.ndarray,
    labels: np.ndarray | None,
    method: str,
    params: dict[str, Any],
) -> FilterResult:
    return FilterResult(
        ids=ids,
        kept=kept,
        reason=np.where(kept, "kept", method).astype(str),
        score=score,
        representative_id=np.full(ids.shape[0], "", dtype=str),
        labels=labels,
        method=method,
        params=params,
    )


@BASELINES.decorator("random")
def random_subset(
    ids: Any,
    *,
    keep: float,
    seed: int = 0,
    labels: Any = None,
    stratified: bool = False,
) -> FilterResult:
    """Keep a random ``floor(keep x N)`` of the items.

    Parameters
    ----------
    ids : ``(N,)`` sample ids, or an ``Embeddings`` (its ids and labels are used).
    keep : fraction kept, in ``(0, 1]``.
    seed : the random generator's seed.
    labels : ``(N,)`` class labels (needed for ``stratified``).
    stratified : keep ``keep`` of every class rather than of the whole.

    Returns
    -------
    A :class:`FilterResult` with ``method="random"``; ``score`` is each item's random
    priority in ``[0, 1)`` and the highest priorities are the ones removed.
    """
    if hasattr(ids, "ids"):
        labels = getattr(ids, "labels", None) if labels is None else labels
        ids = ids.ids
    n = len(ids)
    id_arr = as_ids(ids, n)
    label_arr = as_per_sample(labels, n, what="labels")
    n_keep = _n_keep(n, keep)
    priority = np.random.default_rng(seed).random(n)
    kept = _remove_highest(
        priority, id_arr, n_keep=n_keep, keep=keep, labels=label_arr, stratified=stratified
    )
    params = {"keep": float(keep), "seed": int(seed), "stratified": bool(stratified)}
    return _result(id_arr, kept, priority, label_arr, "random", params)


def uniqueness_scores(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """FiftyOne's uniqueness (fiftyone.brain ``compute_uniqueness``) of every row of ``x``.

    The Euclidean distances to the 3 nearest other points, weighted 0.6 / 0.3 / 0.1 and
    averaged, divided by the largest such value: 1 for the most isolated point, near 0 inside
    a pile of near-copies. With 3 points or fewer every point scores 1 (FiftyOne's rule); if
    every point coincides all score 0. Neighbours come from faiss (exact up to 20k points,
    IVF with recall ~0.99 above).

    Returns
    -------
    ``(N,)`` float64 in ``[0, 1]``.
    """
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    k = len(UNIQUENESS_WEIGHTS)
    if n <= k:
        return np.ones(n, dtype=np.float64)
    dist, _ = NeighbourIndex(x, metric="l2", seed=seed).knn(k, desc="uniqueness")
    dist = np.where(np.isfinite(dist), dist, 0.0).astype(np.float64)
    weighted = np.mean(dist * np.asarray(UNIQUENESS_WEIGHTS), axis=1)
    top = weighted.max()
    return weighted / top if top > 0 else np.zeros(n, dtype=np.float64)


@BASELINES.decorator("uniqueness")
def uniqueness(
    embeddings_or_x: Any,
    *,
    keep: float,
    ids: Any = None,
    labels: Any = None,
    stratified: bool = False,
    seed: int = 0,
) -> FilterResult:
    """Drop the least unique items (FiftyOne style) until ``floor(keep x N)`` remain.

    Parameters
    ----------
    embeddings_or_x : an ``Embeddings`` or an ``(N, D)`` array.
    keep : fraction kept, in ``(0, 1]``.
    ids, labels : override the ``Embeddings``'s own (default ids ``"0" .. "N-1"``).
    stratified : keep ``keep`` of every class.
    seed : seeds the approximate neighbour index beyond 20k points.

    Returns
    -------
    A :class:`FilterResult` with ``method="uniqueness"`` and ``score = 1 - uniqueness``;
    equal scores are removed in id order.
    """
    data = unpack(embeddings_or_x, ids=ids, labels=labels, min_items=1)
    n_keep = _n_keep(len(data), keep)
    score = 1.0 - uniqueness_scores(data.values, seed=seed)
    kept = _remove_highest(
        score, data.ids, n_keep=n_keep, keep=keep, labels=data.labels, stratified=stratified
    )
    params = {
        "keep": float(keep),
        "seed": int(seed),
        "stratified": bool(stratified),
        "neighbours": len(UNIQUENESS_WEIGHTS),
        "weights": list(UNIQUENESS_WEIGHTS),
    }
    return _result(data.ids, kept, score, data.labels, "uniqueness", params)
