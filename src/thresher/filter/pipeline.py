"""The thesis's filter: reduce, drop outliers, drop near-duplicates — exact counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.filter.budgets import Budget, global_budget, per_class_budgets
from thresher.filter.duplicates import DUPLICATE_METHODS, find_duplicates
from thresher.filter.inputs import check_fraction, unpack
from thresher.filter.outliers import OUTLIER_SCORES, outlier_scores, select_top
from thresher.filter.reduce_dims import REDUCERS, reduce_dims, target_dims
from thresher.filter.result import FilterResult
from thresher.progress import track

OUTLIER_SPACES = ("auto", "original", "reduced")
# Outliers are scored in the original features (PCA to 10 dims halved outlier recall on
# synthetic data, DESIGN) unless they are too wide for HDBSCAN to be practical.
AUTO_ORIGINAL_MAX_FEATURES = 512


def filter_dataset(
    embeddings_or_x: Any,
    *,
    ids: Any = None,
    labels: Any = None,
    predictions: Any = None,
    outliers: float = 0.05,
    similar: float = 0.05,
    reduce: str = "pca",
    dims: int | None = 128,
    per_class: bool = False,
    method: str = "auto",
    outlier_score: str = "glosh",
    outlier_space: str = "auto",
    k: int = 5,
    min_cluster_size: int = 5,
    seed: int = 0,
    duplicate_options: dict[str, Any] | None = None,
) -> FilterResult:
    """Remove exactly ``ceil(outliers x N)`` outliers, then cluster the rest down to
    ``K = floor((1 - outliers - similar) x N)`` clusters and keep one item per cluster.

    Parameters
    ----------
    embeddings_or_x : an ``Embeddings`` (values, ids, labels, predictions) or ``(N, D)``.
    ids : ``(N,)`` unique ids (default: the Embeddings' ids, else ``"0" .. "N-1"``).
    labels : ``(N,)`` class labels (default: the Embeddings' labels; optional).
    predictions : ``(N,)`` model predictions, the budget groups of unlabelled data when
        ``per_class=True``.
    outliers, similar : fractions of ``N`` to remove, each in ``[0, 1)``, sum below 1.
    reduce : ``"pca"``, ``"umap"`` or ``"none"`` (:data:`REDUCERS`).
    dims : ``N_reduce``; the features are reduced to ``min(dims, N, D)`` dims (unchanged when
        that is ``D``). ``None`` keeps all.
    per_class : share both budgets over the classes (largest remainder, totals unchanged;
        see :mod:`thresher.filter.budgets`) and score/cluster each class on its own.
    method : near-duplicate route, ``"auto"``, ``"exact"`` or ``"scalable"``
        (:data:`DUPLICATE_METHODS`).
    outlier_score : ``"glosh"``, ``"mst"`` or ``"knn"`` (:data:`OUTLIER_SCORES`). GLOSH and MST
        are exact but slow beyond some tens of thousands of items; ``knn`` scales to 1M+.
    outlier_space : ``"original"`` features, ``"reduced"`` ones, or ``"auto"``: the original
        ones up to 512 features, the reduced ones above.
    k, min_cluster_size : neighbours of the outlier score / HDBSCAN's smallest cluster.
    seed : seeds PCA's randomised solver, UMAP and the approximate neighbour indexes.
    duplicate_options : extra options of the near-duplicate route (e.g. ``max_component``).

    Returns
    -------
    A :class:`FilterResult` with ``method="filter"``: reasons ``kept``/``outlier``/
    ``similar``, each near-duplicate naming its kept item in ``representative_id``.
    """
    data = unpack(embeddings_or_x, ids=ids, labels=labels, predictions=predictions)
    n, d = data.values.shape
    outliers = check_fraction(outliers, name="outliers")
    similar = check_fraction(similar, name="similar")
    if outliers + similar >= 1.0:
        raise ConfigError(
            f"outliers + similar = {outliers + similar:g} removes everything; "
            "keep their sum below 1 (e.g. 0.05 + 0.05)"
        )
    REDUCERS.get(reduce)
    DUPLICATE_METHODS.get(method)
    OUTLIER_SCORES.get(outlier_score)
    if outlier_space not in OUTLIER_SPACES:
        raise ConfigError(
            f"unknown outlier_space {outlier_space!r} (valid: {', '.join(OUTLIER_SPACES)})"
        )
    whole = global_budget(n, outliers=outliers, similar=similar)
    if whole.kept < 1:
        raise ConfigError(
            f"outliers={outliers:g}, similar={similar:g} keep floor({1 - outliers - similar:g}"
            f" x {n}) = 0 items; lower the percentages"
        )

    groups, label_source = _groups(data.labels, data.predictions, per_class)
    if per_class:
        assert groups is not None  # _groups refuses per_class without labels or predictions
        names, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        budgets = per_class_budgets(sizes, outliers=outliers, similar=similar)
        members = [np.flatnonzero(inverse == c) for c in range(names.shape[0])]
    else:
        names = np.array(["all"])
        budgets = [whole]
        members = [np.arange(n)]
    if outliers > 0:
        for name, rows, budget in zip(names, members, budgets, strict=True):
            if budget.outliers and rows.shape[0] <= k:
                label = name.item() if isinstance(name, np.generic) else name
                where = f"class {label!r} has" if per_class else "the data set has"
                raise ConfigError(
                    f"{where} {rows.shape[0]} items but the outlier score needs more than "
                    f"k={k} neighbours; lower k or turn per_class off"
                )

    reduced = reduce_dims(data.values, method=reduce, n_dims=dims, seed=seed)
    space = outlier_space
    if space == "auto":
        space = "original" if d <= AUTO_ORIGINAL_MAX_FEATURES else "reduced"
    outlier_x = data.values if space == "original" else reduced

    reason = np.full(n, "kept", dtype=object)
    score = np.zeros(n, dtype=np.float64)
    out_score = np.zeros(n, dtype=np.float64) if outliers > 0 else None
    rep_id = np.full(n, "", dtype=object)
    reports: dict[str, Any] = {}
    items = list(zip(names, members, budgets, strict=True))
    for name, rows, budget in track(items, total=len(items), desc="filter"):
        report = _filter_group(
            rows,
            budget,
            ids=data.ids,
            outlier_x=outlier_x,
            reduced=reduced,
            reason=reason,
            score=score,
            out_score=out_score,
            rep_id=rep_id,
            outlier_score=outlier_score,
            k=k,
            min_cluster_size=min_cluster_size,
            method=method,
            seed=seed,
            duplicate_options=duplicate_options or {},
        )
        reports[str(name.item() if isinstance(name, np.generic) else name)] = report

    params = {
        "outliers": outliers,
        "similar": similar,
        "reduce": reduce,
        "dims": dims,
        "n_dims": int(reduced.shape[1]),
        "n_features": int(d),
        "n_dims_rule": "min(dims, N, D)",
        "per_class": bool(per_class),
        "label_source": label_source,
        "method": method,
        "outlier_score": outlier_score,
        "outlier_space": space,
        "k": int(k),
        "min_cluster_size": int(min_cluster_size),
        "seed": int(seed),
        "duplicate_options": dict(duplicate_options or {}),
        "groups": reports,
    }
    reason_arr = reason.astype(str)
    return FilterResult(
        ids=data.ids,
        kept=reason_arr == "kept",
        reason=reason_arr,
        score=score,
        representative_id=rep_id.astype(str),
        labels=groups if per_class else data.labels,
        method="filter",
        params=params,
        outlier_scores=out_score,
    )


def _groups(
    labels: np.ndarray | None, predictions: np.ndarray | None, per_class: bool
) -> tuple[np.ndarray | None, str | None]:
    if not per_class:
        return labels, "labels" if labels is not None else None
    if labels is not None:
        return labels, "labels"
    if predictions is not None:
        return predictions, "predictions"
    raise ConfigError(
        "per_class=True needs class labels or model predictions; pass labels=, "
        "predictions= (or embeddings extracted with the full forward pass), or per_class=False"
    )


def _filter_group(
    rows: np.ndarray,
    budget: Budget,
    *,
    ids: np.ndarray,
    outlier_x: np.ndarray,
    reduced: np.ndarray,
    reason: np.ndarray,
    score: np.ndarray,
    out_score: np.ndarray | None,
    rep_id: np.ndarray,
    outlier_score: str,
    k: int,
    min_cluster_size: int,
    method: str,
    seed: int,
    duplicate_options: dict[str, Any],
) -> dict[str, Any]:
    """Run both stages on one group, writing into the per-sample arrays."""
    report: dict[str, Any] = {
        "items": int(rows.shape[0]),
        "outliers": budget.outliers,
        "similar": budget.similar,
        "kept": budget.kept,
    }
    remaining = rows
    # A group too small for the score's neighbours is only allowed when it loses no outlier.
    if out_score is not None and rows.shape[0] > k:
        scores = outlier_scores(
            outlier_x[rows], method=outlier_score, k=k, min_cluster_size=min_cluster_size, seed=seed
        )
        out_score[rows] = scores.score
        score[rows] = scores.score
        is_out = select_top(scores.score, ids[rows], budget.outliers)
        reason[rows[is_out]] = "outlier"
        remaining = rows[~is_out]
    if budget.similar > 0:
        dups = find_duplicates(
            reduced[remaining],
            n_clusters=budget.kept,
            ids=ids[remaining],
            method=method,
            seed=seed,
            **duplicate_options,
        )
        gone = ~dups.is_kept
        reason[remaining[gone]] = "similar"
        rep_id[remaining[gone]] = ids[remaining[dups.representative[gone]]]
        score[remaining[gone]] = np.clip(dups.similarity[gone], 0.0, 1.0)
        report["duplicates"] = {"method": dups.method, **dups.info}
    return report


__all__ = ["filter_dataset", "target_dims"]
