"""The thesis's filter: projection, drop outliers, drop near-duplicates — exact counts.

Two named presets (:data:`PRESETS`): ``thesis`` is the thesis's method as written (Euclidean
features, GLOSH, one global budget, semantic near-duplicates only); ``default`` is what won on
the planted-corruption benchmark (``benchmarks/planted/``, tables in ``docs/filtering.md``):
L2-normalised features, the cosine distance to the 10th neighbour of the same class as the
outlier score, and aligned pixel copies removed before semantic near-duplicates when the images
are given. ``filter_dataset``'s keyword defaults are the ``default`` preset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.filter.budgets import Budget, ceil_count, global_budget, per_class_budgets
from thresher.filter.copies import DEFAULT_COPY_THRESHOLD, copy_scores, remove_copies
from thresher.filter.duplicates import DUPLICATE_METHODS, find_duplicates
from thresher.filter.outliers import OUTLIER_SCORES, outlier_scores, select_top
from thresher.filter.projection import PROJECTIONS, project, target_dims
from thresher.filter.result import FilterResult
from thresher.neighbours import normalise_rows
from thresher.progress import track
from thresher.validation import check_fraction, unpack

OUTLIER_SPACES = ("auto", "original", "reduced")
# Outliers are scored in the original features (PCA to 10 dims halved outlier recall on
# synthetic data, DESIGN) unless they are too wide for HDBSCAN to be practical.
AUTO_ORIGINAL_MAX_FEATURES = 512
NORMALISATIONS = ("l2", "none")

# Named settings of filter_dataset; "default" equals its keyword defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {
        "normalise": "l2",
        "outlier_score": "knn",
        "k": 10,
        "per_class": None,
        "copies": True,
    },
    "thesis": {
        "normalise": "none",
        "outlier_score": "glosh",
        "k": 5,
        "per_class": False,
        "copies": False,
    },
}


def preset(name: str) -> dict[str, Any]:
    """The keyword arguments of a named preset (``default`` or ``thesis``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown filter preset {name!r} (valid: {', '.join(PRESETS)})")
    return dict(PRESETS[name])


def filter_dataset(
    embeddings_or_x: Any,
    *,
    ids: Any = None,
    labels: Any = None,
    predictions: Any = None,
    outliers: float = 0.05,
    similar: float = 0.05,
    projection: str = "pca",
    dims: int | None = 128,
    per_class: bool | None = None,
    method: str = "auto",
    outlier_score: str = "knn",
    outlier_space: str = "auto",
    k: int = 10,
    min_cluster_size: int = 5,
    seed: int = 0,
    duplicate_options: dict[str, Any] | None = None,
    normalise: str = "l2",
    images: np.ndarray | None = None,
    copies: bool = True,
    copy_threshold: float = DEFAULT_COPY_THRESHOLD,
    label_scores: np.ndarray | None = None,
    label_issues: float = 0.0,
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
    projection : ``"pca"``, ``"umap"`` or ``"none"`` (:data:`PROJECTIONS`).
    dims : ``N_reduce``; the features are reduced to ``min(dims, N, D)`` dims (unchanged when
        that is ``D``). ``None`` keeps all.
    per_class : share both budgets over the classes (largest remainder, totals unchanged;
        see :mod:`thresher.filter.budgets`) and score/cluster each class on its own.
        ``None`` (default): per class when labels or predictions exist.
    method : near-duplicate route, ``"auto"``, ``"exact"`` or ``"scalable"``
        (:data:`DUPLICATE_METHODS`).
    outlier_score : ``"glosh"``, ``"mst"`` or ``"knn"`` (:data:`OUTLIER_SCORES`). GLOSH and MST
        are exact but slow beyond some tens of thousands of items; ``knn`` scales to 1M+.
    outlier_space : ``"original"`` features, ``"reduced"`` ones, or ``"auto"``: the original
        ones up to 512 features, the reduced ones above.
    k, min_cluster_size : neighbours of the outlier score / HDBSCAN's smallest cluster.
    seed : seeds PCA's randomised solver, UMAP and the approximate neighbour indexes.
    duplicate_options : extra options of the near-duplicate route (e.g. ``max_component``).
    normalise : ``"l2"`` scales every row to unit length first (so distances are cosine
        ones), ``"none"`` keeps the raw features (the thesis). Measured: out-of-domain images
        have smaller feature norms than real ones, which hides them from Euclidean scores.
    images : ``(N, C, H, W)`` pixels of the same rows; with ``copies=True`` aligned pixel
        copies (:mod:`thresher.filter.copies`) are removed first from the near-duplicate
        budget, each marked ``signal="pixels"``.
    copies, copy_threshold : whether to look for pixel copies, and the aligned correlation a
        pair needs to count as one.
    label_scores : ``(N,)`` label-issue scores in ``[0, 1]`` (higher = label more likely
        wrong; :func:`thresher.filter.labels.label_issues`).
    label_issues : fraction of ``N`` removed as ``"label"`` first, by ``label_scores``;
        the outlier and near-duplicate counts stay fractions of the full ``N``.

    Returns
    -------
    A :class:`FilterResult` with ``method="filter"``: reasons ``kept``/``outlier``/
    ``similar``, each near-duplicate naming its kept item in ``representative_id``.
    """
    data = unpack(embeddings_or_x, ids=ids, labels=labels, predictions=predictions)
    n, d = data.values.shape
    outliers = check_fraction(outliers, name="outliers")
    similar = check_fraction(similar, name="similar")
    label_issues = check_fraction(label_issues, name="label_issues")
    if outliers + similar + label_issues >= 1.0:
        raise ConfigError(
            f"outliers + similar + label issues = {outliers + similar + label_issues:g} "
            "removes everything; keep their sum below 1 (e.g. 0.05 + 0.05)"
        )
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"unknown normalise {normalise!r} (valid: {', '.join(NORMALISATIONS)})")
    if images is not None and (not hasattr(images, "shape") or images.shape[0] != n):
        raise ConfigError(
            f"images has {getattr(images, 'shape', ['?'])[0]} rows but the embeddings have "
            f"{n}; pass the images of the same samples, in the same order"
        )
    if label_issues > 0:
        if label_scores is None:
            raise ConfigError(
                "label_issues > 0 needs label_scores (from thresher.filter.labels."
                "label_issues, or `thresher labels RUN`); compute them first or set it to 0"
            )
        label_scores = np.asarray(label_scores, dtype=np.float64)
        if label_scores.shape != (n,) or not np.isfinite(label_scores).all():
            raise ConfigError(
                f"label_scores must be ({n},) finite values, got shape {label_scores.shape}"
            )
    auto_groups = per_class is None
    if per_class is None:
        per_class = data.labels is not None or data.predictions is not None
    PROJECTIONS.get(projection)
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

    reason = np.full(n, "kept", dtype=object)
    score = np.zeros(n, dtype=np.float64)
    signal = np.full(n, "", dtype=object)
    # Label issues go first, globally: ceil(label_issues x N) highest scores (ties by id).
    pool = np.arange(n)
    if label_issues > 0:
        assert label_scores is not None
        is_label = select_top(label_scores, data.ids, ceil_count(label_issues * n))
        reason[is_label] = "label"
        score[is_label] = np.clip(label_scores[is_label], 0.0, 1.0)
        pool = np.flatnonzero(~is_label)
    values = normalise_rows(data.values) if normalise == "l2" else data.values
    reduced = project(values, method=projection, n_dims=dims, seed=seed)
    space = outlier_space
    if space == "auto":
        space = "original" if d <= AUTO_ORIGINAL_MAX_FEATURES else "reduced"
    outlier_x = values if space == "original" else reduced
    pixel = None
    if images is not None and copies and similar > 0:
        # as given: np.asarray would turn a memory map into a plain view of all its pages
        pixels = images if isinstance(images, np.ndarray) else np.asarray(images)
        pixel = copy_scores(pixels, embeddings=values, seed=seed)

    rep_id = np.full(n, "", dtype=object)
    n_copies = 0
    if pixel is not None:
        # Pixel copies are a property of the whole set (a copy can sit in any class's share):
        # they go first, globally, from the near-duplicate count.
        gone, reps, sims = remove_copies(
            pixel, pool, data.ids, budget=whole.similar, threshold=copy_threshold
        )
        reason[gone] = "similar"
        signal[gone] = "pixels"
        rep_id[gone] = data.ids[reps]
        score[gone] = np.clip(sims, 0.0, 1.0)
        pool = pool[~np.isin(pool, gone)]
        n_copies = int(gone.shape[0])
    # The stages below see the pool only, with fractions that keep the global counts:
    # ceil(outliers x N) outliers, and the near-duplicates the copies left.
    if pool.shape[0] == n:  # nothing went first: the thesis's own fractions and rounding
        o_pool, s_pool = outliers, similar
    else:
        o_pool = min(whole.outliers / pool.shape[0], 1.0)
        s_pool = min((whole.similar - n_copies) / pool.shape[0], 1.0)

    groups, label_source = _groups(data.labels, data.predictions, per_class)
    if per_class:
        assert groups is not None  # _groups refuses per_class without labels or predictions
        names, inverse, sizes = np.unique(groups[pool], return_inverse=True, return_counts=True)
        budgets = per_class_budgets(sizes, outliers=o_pool, similar=s_pool)
        members = [pool[inverse == c] for c in range(names.shape[0])]
    else:
        names = np.array(["all"])
        budgets = [global_budget(pool.shape[0], outliers=o_pool, similar=s_pool)]
        members = [pool]
    group_k = [k] * len(members)
    if outliers > 0:
        for g, (name, rows, budget) in enumerate(zip(names, members, budgets, strict=True)):
            capped = auto_groups and per_class and rows.shape[0] > 1
            if budget.outliers and rows.shape[0] <= k and capped:
                # Per class by default only: a class smaller than k + 1 is scored with all its
                # other members as neighbours (recorded as the group's "k"), not refused.
                group_k[g] = int(rows.shape[0]) - 1
                continue
            if budget.outliers and rows.shape[0] <= k:
                label = name.item() if isinstance(name, np.generic) else name
                where = f"class {label!r} has" if per_class else "the data set has"
                raise ConfigError(
                    f"{where} {rows.shape[0]} items but the outlier score needs more than "
                    f"k={k} neighbours; lower k or turn per_class off"
                )

    out_score = np.zeros(n, dtype=np.float64) if outliers > 0 else None
    reports: dict[str, Any] = {}
    items = list(zip(names, members, budgets, group_k, strict=True))
    for name, rows, budget, k_group in track(items, total=len(items), desc="filter"):
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
            k=k_group,
            min_cluster_size=min_cluster_size,
            method=method,
            seed=seed,
            duplicate_options=duplicate_options or {},
            signal=signal,
        )
        if k_group != k:
            report["k"] = k_group
        reports[str(name.item() if isinstance(name, np.generic) else name)] = report

    if n_copies:
        # A pixel copy's kept original may have gone as a semantic near-duplicate since:
        # point the copy at the item that stayed.
        row_of = {i: r for r, i in enumerate(data.ids)}
        for r in np.flatnonzero(signal == "pixels"):
            target = row_of[rep_id[r]]
            while reason[target] == "similar":
                target = row_of[rep_id[target]]
            rep_id[r] = data.ids[target]

    params = {
        "outliers": outliers,
        "similar": similar,
        "label_issues": label_issues,
        "normalise": normalise,
        "copies": bool(pixel is not None),
        "pixel_copies": n_copies,
        "copy_threshold": float(copy_threshold),
        "projection": projection,
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
        signal=signal.astype(str),
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
    signal: np.ndarray,
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
    if remaining.shape[0] > budget.kept:
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
        signal[remaining[gone]] = "embedding"
        rep_id[remaining[gone]] = ids[remaining[dups.representative[gone]]]
        score[remaining[gone]] = np.clip(dups.similarity[gone], 0.0, 1.0)
        report["duplicates"] = {"method": dups.method, **dups.info}
    return report


__all__ = ["NORMALISATIONS", "PRESETS", "filter_dataset", "preset", "target_dims"]
