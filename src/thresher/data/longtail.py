"""Long-tailed versions of balanced data sets (CIFAR-10-LT style, Cao et al. 2019, LDAM).

Class ``i`` (in label order, class 0 the head) keeps ``n_i`` samples:

- ``exp``: ``n_i = floor(n_max * (1 / ratio) ** (i / (C - 1)))``;
- ``step``: the last ``floor(mu * C)`` classes keep ``floor(n_max / ratio)``, the others
  ``n_max``.

From CIFAR-10's 5,000 images per class, ``exp`` at ratio 100 keeps 12,406 images (5000, 2997,
1796, 1077, 645, 387, 232, 139, 83, 50), the CIFAR-10-LT of the LDAM paper.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError

LongTailKind = Literal["exp", "step"]


def long_tailed_counts(
    num_classes: int, *, n_max: int, ratio: float, kind: LongTailKind = "exp", mu: float = 0.5
) -> np.ndarray:
    """``(num_classes,)`` samples per class of a long-tailed profile (see the module doc)."""
    if not ratio >= 1.0:
        raise ConfigError(
            f"imbalance ratio must be >= 1 (head/tail size), got {ratio}; e.g. ratio=100"
        )
    if num_classes < 1 or n_max < 1:
        raise ConfigError(f"need at least one class and one sample, got {num_classes}, {n_max}")
    if kind == "exp":
        if num_classes == 1:
            return np.array([n_max], dtype=np.int64)
        # the same float expression as the LDAM reference code, so counts match it exactly
        factor = 1.0 / ratio
        return np.array(
            [int(n_max * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)],
            dtype=np.int64,
        )
    if kind == "step":
        if not 0.0 <= mu <= 1.0:
            raise ConfigError(f"mu (fraction of minority classes) must be in [0, 1], got {mu}")
        counts = np.full(num_classes, n_max, dtype=np.int64)
        n_minor = int(np.floor(mu * num_classes))
        if n_minor:
            counts[num_classes - n_minor :] = int(np.floor(n_max / ratio))
        return counts
    raise ConfigError(f"unknown long-tail kind {kind!r}; use 'exp' or 'step'")


def make_long_tailed(
    ds: ImageDataset,
    *,
    ratio: float,
    kind: LongTailKind = "exp",
    seed: int = 0,
    mu: float = 0.5,
    n_max: int | None = None,
) -> ImageDataset:
    """A long-tailed subset of ``ds`` following Cao et al. (2019).

    Parameters:
        ratio: head-to-tail size ratio ``n_max / n_min`` (>= 1).
        kind: ``"exp"`` (exponential decay over classes) or ``"step"``.
        seed: which samples of each class are kept (``numpy.random.default_rng(seed)``).
        mu: for ``step``, the fraction of classes that are minority classes.
        n_max: samples of the head class; default the smallest class count of ``ds``, so every
            class can supply its quota (5,000 for CIFAR-10).

    Returns:
        the subset in source order with ids, classes and labels preserved; ``source["long_tail"]``
        records ratio, kind, seed, mu, n_max and the per-class counts.
    """
    labels = ds.require_labels("make_long_tailed")
    available = np.bincount(labels, minlength=ds.num_classes)
    head = int(available.min()) if n_max is None else n_max
    if head < 1:
        empty = ds.classes[int(np.argmin(available))]
        raise DataError(
            f"{ds.name}: class {empty!r} has no samples; a long-tailed subset needs every class "
            "(pass n_max= and drop the empty class first)"
        )
    counts = long_tailed_counts(ds.num_classes, n_max=head, ratio=ratio, kind=kind, mu=mu)
    short = np.flatnonzero(counts > available)
    if short.size:
        c = int(short[0])
        raise DataError(
            f"{ds.name}: class {ds.classes[c]!r} has {available[c]} samples but the profile needs "
            f"{counts[c]}; lower n_max (default: the smallest class count)"
        )
    rng = np.random.default_rng(seed)
    kept = [
        rng.permutation(np.flatnonzero(labels == c))[: counts[c]] for c in range(ds.num_classes)
    ]
    order = np.sort(np.concatenate(kept))
    long_tail = {
        "ratio": float(ratio),
        "kind": kind,
        "seed": seed,
        "mu": mu,
        "n_max": head,
        "counts": counts.tolist(),
    }
    return ImageDataset(
        images=ds.images[order],
        labels=labels[order],
        ids=ds.ids[order],
        classes=ds.classes,
        name=f"{ds.name}-lt{ratio:g}-{kind}",
        source={**ds.source, "long_tail": long_tail},
    )
