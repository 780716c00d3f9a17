"""Selectors: ways to choose a subset by a per-item removal score, in one registry of records.

The thesis compares its filters against random subsampling and FiftyOne's uniqueness; both are
selectors here, and a new one (a pruning score, say) is one decorated function:

    @register_selector("my_score", description="...")
    def my_score(inputs: SelectionInput) -> np.ndarray:  # (N,) float, higher = removed first
        ...

after which ``thresher filter --baseline my_score --keep 90``, ``thresher compare --methods
my_score``, the app's filter form and the result's ``reason`` column all know it. Every
selector keeps ``floor(keep x N)`` items (the same count as the filter keeps when
``keep = 1 - outliers - similar``); ``stratified=True`` shares that count over the classes as
:func:`thresher.filter.budgets.apportion` does (largest remainder, totals exact). Equal scores
are removed in id order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.filter.budgets import apportion, floor_count
from thresher.filter.outliers import select_top
from thresher.filter.result import FilterResult
from thresher.neighbours import NeighbourIndex
from thresher.registry import Registry
from thresher.validation import as_ids, as_per_sample, check_fraction, unpack


@dataclass(frozen=True)
class SelectionInput:
    """What a selector's score sees.

    Attributes:
        ids: ``(N,)`` sample ids.
        values: ``(N, D)`` embeddings, or ``None`` when the caller gave ids only.
        labels: ``(N,)`` class labels, or ``None``.
        seed: the request's seed (random draws, approximate indexes).
        keep: the share that will be kept; greedy selectors may stop ordering after
            ``ceil(keep x N)`` picks and rank the rest by their last criterion.
        signals: per-item signals a selector declared in ``needs_signals`` (e.g. the training
            dynamics ``el2n``, ``grand``, ``forgetting``), each ``(N,)`` in ``ids`` order.
    """

    ids: np.ndarray
    values: np.ndarray | None
    labels: np.ndarray | None
    seed: int
    keep: float = 1.0
    signals: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Selector:
    """A registered selector.

    Attributes:
        name: registry name; also the ``reason`` of the items it removes.
        score: ``score(SelectionInput) -> (N,)`` float; the highest scores are removed first.
        description: one line for the CLI's and the app's lists.
        needs_embeddings: refuse an ids-only input (``random`` needs none).
        needs_labels: refuse unlabelled data.
        needs_signals: per-item signals the score reads from ``SelectionInput.signals``
            (``thresher.train.dynamics.SIGNALS``: the run's workflow computes them).
        params: extra parameters recorded in the result (``FilterResult.params``).
    """

    name: str
    score: Callable[[SelectionInput], np.ndarray]
    description: str = ""
    needs_embeddings: bool = True
    needs_labels: bool = False
    needs_signals: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)


SELECTORS: Registry[Selector] = Registry("selector", error=ConfigError)


def register_selector(
    name: str,
    *,
    description: str = "",
    needs_embeddings: bool = True,
    needs_labels: bool = False,
    needs_signals: tuple[str, ...] = (),
    params: dict[str, Any] | None = None,
) -> Callable[[Callable[[SelectionInput], np.ndarray]], Callable[[SelectionInput], np.ndarray]]:
    """Decorator registering a score function as the selector ``name``."""
    from thresher.filter.result import FILTER_REASONS

    if name in FILTER_REASONS:
        raise ValueError(f"{name!r} is a filter reason; give the selector another name")

    def wrap(score: Callable[[SelectionInput], np.ndarray]) -> Callable[..., np.ndarray]:
        doc = (score.__doc__ or "").strip().splitlines()
        SELECTORS.register(
            name,
            Selector(
                name=name,
                score=score,
                description=description or (doc[0] if doc else name),
                needs_embeddings=needs_embeddings,
                needs_labels=needs_labels,
                needs_signals=tuple(needs_signals),
                params=dict(params or {}),
            ),
        )
        return score

    return wrap


def select(
    name: str,
    data: Any,
    *,
    keep: float,
    seed: int = 0,
    ids: Any = None,
    labels: Any = None,
    stratified: bool = False,
    signals: Mapping[str, Any] | None = None,
) -> FilterResult:
    """Keep ``floor(keep x N)`` items by the selector ``name``.

    Parameters
    ----------
    name : a registered selector (:data:`SELECTORS`).
    data : an ``Embeddings``, an ``(N, D)`` array, or (for selectors that need no embeddings)
        a ``(N,)`` sequence of ids.
    keep : fraction kept, in ``(0, 1]``.
    seed : passed to the score.
    ids, labels : override the ``Embeddings``'s own.
    stratified : keep ``keep`` of every class rather than of the whole.
    signals : ``name -> (N,)`` per-item signals, for selectors that need them
        (``Selector.needs_signals``); in the items' order.

    Returns
    -------
    A :class:`FilterResult` with ``method = reason = name`` for the removed items and the
    selector's scores in ``score`` (min-max scaled to ``[0, 1]`` when they fall outside).
    """
    selector = SELECTORS.get(name)
    inputs = _inputs(selector, data, ids=ids, labels=labels, seed=seed, keep=keep)
    n = inputs.ids.shape[0]
    n_keep = _n_keep(n, keep)
    if selector.needs_labels and inputs.labels is None:
        raise ConfigError(f"the {name} selector needs labels; pass labelled data")
    if selector.needs_signals:
        inputs = replace(inputs, signals=_signals(selector, signals, n))
    score = np.asarray(selector.score(inputs), dtype=np.float64)
    if score.shape != (n,) or not np.all(np.isfinite(score)):
        raise ConfigError(
            f"the {name} selector returned {score.shape} scores for {n} items (or non-finite "
            "ones); a selector must give one finite score per item"
        )
    kept = _remove_highest(
        score, inputs.ids, n_keep=n_keep, keep=keep, labels=inputs.labels, stratified=stratified
    )
    params = {"keep": float(keep), "seed": int(seed), "stratified": bool(stratified)}
    params.update(selector.params)
    return _result(inputs.ids, kept, _unit_scale(score), inputs.labels, name, params)


def _signals(
    selector: Selector, signals: Mapping[str, Any] | None, n: int
) -> dict[str, np.ndarray]:
    """The signals ``selector`` needs, checked: present, one finite value per item."""
    given = dict(signals or {})
    missing = [s for s in selector.needs_signals if s not in given]
    if missing:
        raise ConfigError(
            f"the {selector.name} selector needs the per-item signal(s) {', '.join(missing)} "
            "(training dynamics); run it on a run directory (`thresher filter RUN --baseline "
            f"{selector.name} --keep PCT`), which trains for them, or pass signals="
        )
    out = {}
    for key in selector.needs_signals:
        arr = np.asarray(given[key], dtype=np.float64)
        if arr.shape != (n,) or not np.all(np.isfinite(arr)):
            raise ConfigError(
                f"signal {key!r} has shape {arr.shape} (or non-finite values) for {n} items; "
                "give one finite value per item, in the items' order"
            )
        out[key] = arr
    return out


def _unit_scale(score: np.ndarray) -> np.ndarray:
    """Scores as stored in a result: in ``[0, 1]`` already -> unchanged; otherwise min-max
    scaled (the order, which decided the subset, is kept)."""
    if score.size == 0 or (score.min() >= 0.0 and score.max() <= 1.0):
        return score
    span = float(score.max() - score.min())
    return (score - score.min()) / span if span > 0 else np.zeros_like(score)


def _inputs(
    selector: Selector, data: Any, *, ids: Any, labels: Any, seed: int, keep: float
) -> SelectionInput:
    has_values = hasattr(data, "values") and hasattr(data, "ids")
    if selector.needs_embeddings:
        if not has_values and np.ndim(data) != 2:
            raise ConfigError(
                f"the {selector.name} selector needs embeddings (an (N, D) array or "
                "Embeddings), not ids alone"
            )
        unpacked = unpack(data, ids=ids, labels=labels, min_items=1)
        return SelectionInput(unpacked.ids, unpacked.values, unpacked.labels, int(seed), keep)
    # ids only: the embeddings' values are not read (nor checked)
    if has_values:
        labels = getattr(data, "labels", None) if labels is None else labels
        ids = data.ids if ids is None else ids
    elif np.ndim(data) == 2 and ids is None:
        ids = np.arange(np.shape(data)[0]).astype(str)
    id_seq = data if ids is None else ids
    n = len(id_seq)
    if n < 1:
        raise ConfigError("there are no items to select from; pass the whole data set")
    return SelectionInput(
        as_ids(id_seq, n), None, as_per_sample(labels, n, what="labels"), int(seed), keep
    )


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
    if n_keep < classes.shape[0]:
        raise ConfigError(
            f"keep={keep:g} keeps {n_keep} of {n} items, fewer than the {classes.shape[0]} "
            "classes: a class-aware budget cannot keep one of every class; raise keep or use "
            "the global budget (no --per-class)"
        )
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


@register_selector(
    "random", description="a seeded random subset (the pruning literature's strong baseline)",
    needs_embeddings=False,
)  # fmt: skip
def random_priority(inputs: SelectionInput) -> np.ndarray:
    """Each item's random priority in ``[0, 1)`` from ``seed``; the highest are removed."""
    n = int(inputs.ids.shape[0])
    return np.asarray(np.random.default_rng(inputs.seed).random(n), dtype=np.float64)


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
    return select("random", ids, keep=keep, seed=seed, labels=labels, stratified=stratified)


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


@register_selector(
    "uniqueness",
    description="FiftyOne-style uniqueness: the least unique (densest) items go first",
    params={"neighbours": len(UNIQUENESS_WEIGHTS), "weights": list(UNIQUENESS_WEIGHTS)},
)
def uniqueness_removal(inputs: SelectionInput) -> np.ndarray:
    """``1 - uniqueness``: the least unique items are removed first."""
    assert inputs.values is not None  # needs_embeddings
    return 1.0 - uniqueness_scores(np.asarray(inputs.values), seed=inputs.seed)


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
    return select(
        "uniqueness",
        embeddings_or_x,
        keep=keep,
        seed=seed,
        ids=ids,
        labels=labels,
        stratified=stratified,
    )
