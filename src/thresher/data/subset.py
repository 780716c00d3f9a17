"""Deterministic, seeded sample selection: stratified subsets and train/test splits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError


def _quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, exact sum).

    Ties in the remainder go to the lower class index, so the result is deterministic.
    """
    share = counts / counts.sum() * total
    quota = np.minimum(np.floor(share).astype(np.int64), counts)
    remainder = share - quota
    for c in np.argsort(-remainder, kind="stable"):
        if quota.sum() >= total:
            break
        if quota[c] < counts[c]:
            quota[c] += 1
    return quota


def stratified_indices(labels: np.ndarray | None, n: int, *, limit: int, seed: int) -> np.ndarray:
    """Indices of a seeded subset of ``limit`` of ``n`` samples, class proportions preserved.

    Each class contributes ``limit * count_c / n`` samples (largest-remainder rounding, so the
    total is exactly ``limit``), drawn uniformly without replacement with
    ``numpy.random.default_rng(seed)``. Unlabelled data (``labels=None``) get a plain random
    subset. The result is sorted ascending, so the subset keeps the source order.

    Returns:
        ``(min(limit, n),)`` int64 indices into the source.
    """
    if limit < 1:
        raise ConfigError(f"limit must be a positive number of samples, got {limit}")
    if limit >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if labels is None:
        return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)
    labels = np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    quota = _quotas(counts, limit)
    chosen = [
        rng.permutation(np.flatnonzero(inverse == c))[: quota[c]] for c in range(len(classes))
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(
    labels: np.ndarray, *, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified ``(train, test)`` partition of ``range(len(labels))``.

    Each class puts ``round(test_fraction * count_c)`` of its samples (at least one when it has
    two or more) into the test part. Both index arrays are sorted ascending.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = round(test_fraction * len(members))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        test.append(members[:k])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx).astype(np.int64)
    return train_idx, test_idx


def limit_dataset(ds: ImageDataset, *, limit: int, seed: int) -> ImageDataset:
    """The seeded stratified subset of ``limit`` samples of ``ds`` (see
    :func:`stratified_indices`); ``source["limit"]`` records it. ``ds`` itself when it is not
    larger than ``limit``."""
    keep = stratified_indices(ds.labels, len(ds), limit=limit, seed=seed)
    if len(keep) == len(ds):
        return ds
    # through take(): a subclass (a detection set) keeps what travels with its rows (boxes)
    return replace(ds.take(keep), source={**ds.source, "limit": {"limit": limit, "seed": seed}})
