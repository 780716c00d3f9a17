"""Nearest neighbours with faiss: exact (flat) for up to a few hundred thousand points, an
inverted-file index (IVF, seeded k-means, deterministic) above that.

HNSW would be the other approximate choice, but faiss builds it in parallel in an order that
changes from run to run, and results must not depend on the thread schedule.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from thresher.progress import track

Metric = Literal["l2", "cosine"]

# Exact flat search is O(N^2 D): 200k x 64 took ~48 s on 2 cores (DESIGN), past that the
# IVF index answers in a fraction of the time with a recall that filtering tolerates.
EXACT_MAX_ITEMS = 200_000
_BLOCK = 8192


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """``(N, D)`` float32 rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


class NeighbourIndex:
    """A faiss index over ``x`` answering k-NN and range queries, self excluded.

    Parameters
    ----------
    x : ``(N, D)`` float32. For ``metric="cosine"`` the rows must already be unit-norm
        (:func:`normalise_rows`); distances are then ``1 - cos``.
    metric : ``"l2"`` (Euclidean distances) or ``"cosine"``.
    exact : flat (exact) search; ``None`` = exact up to :data:`EXACT_MAX_ITEMS` items.
    seed : seed of the IVF k-means training sample.
    nprobe : IVF cells visited per query (default ``max(16, nlist // 32)``).
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        metric: Metric,
        exact: bool | None = None,
        seed: int = 0,
        nprobe: int | None = None,
    ) -> None:
        import faiss

        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.metric = metric
        n, d = self.x.shape
        self.exact = n <= EXACT_MAX_ITEMS if exact is None else bool(exact)
        kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        if self.exact:
            self.index = faiss.IndexFlat(d, kind)
            self.nlist = 0
        else:
            self.nlist = int(min(max(16, round(math.sqrt(n))), 8192))
            quantiser = faiss.IndexFlat(d, kind)
            ivf = faiss.IndexIVFFlat(quantiser, d, self.nlist, kind)
            ivf.cp.seed = int(seed)
            rng = np.random.default_rng(seed)
            n_train = min(n, 64 * self.nlist)
            sample = self.x[np.sort(rng.choice(n, size=n_train, replace=False))]
            ivf.train(sample)
            ivf.nprobe = int(nprobe or max(16, self.nlist // 32))
            self.index = ivf
            self._quantiser = quantiser  # faiss does not own it; keep it alive
        self.index.add(self.x)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _to_distance(self, raw: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return np.clip(1.0 - raw, 0.0, 2.0).astype(np.float32)
        return np.sqrt(np.maximum(raw, 0.0)).astype(np.float32)

    def knn(self, k: int, *, desc: str = "neighbours") -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other points of every point.

        Returns
        -------
        distances : ``(N, k)`` float32, ascending per row.
        indices : ``(N, k)`` int64 (``-1`` where an approximate index found fewer).
        """
        n = len(self)
        dist = np.empty((n, k), dtype=np.float32)
        idx = np.empty((n, k), dtype=np.int64)
        starts = range(0, n, _BLOCK)
        for s in track(starts, total=len(starts), desc=desc):
            e = min(s + _BLOCK, n)
            raw, nb = self.index.search(self.x[s:e], k + 1)
            # The point itself is usually first, but exact duplicates may come before it:
            # move "self" to the end (stable) and drop the last column.
            is_self = nb == np.arange(s, e)[:, None]
            order = np.argsort(is_self, axis=1, kind="stable")
            nb = np.take_along_axis(nb, order, axis=1)[:, :k]
            raw = np.take_along_axis(raw, order, axis=1)[:, :k]
            dist[s:e] = self._to_distance(raw)
            idx[s:e] = nb
        dist[idx < 0] = np.inf
        return dist, idx

    def within(
        self, rows: np.ndarray, radius: float, *, max_pairs: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """All pairs ``(rows[i], j)`` with distance below ``radius``, ``j != rows[i]``.

        Returns ``(src, dst, dist)`` arrays, or None when more than ``max_pairs`` pairs
        were found (the caller then falls back to its approximation).
        """
        src_parts, dst_parts, dist_parts = [], [], []
        total = 0
        thr = 1.0 - radius if self.metric == "cosine" else radius * radius
        block = 256  # range results can be dense: keep each answer small
        starts = range(0, len(rows), block)
        for s in track(starts, total=len(starts), desc="range search"):
            q = rows[s : s + block]
            lims, raw, nb = self.index.range_search(self.x[q], float(thr))
            counts = np.diff(lims)
            src = np.repeat(q, counts)
            keep = nb != src
            total += int(keep.sum())
            if max_pairs is not None and total > max_pairs:
                return None
            src_parts.append(src[keep])
            dst_parts.append(nb[keep].astype(np.int64))
            dist_parts.append(self._to_distance(raw[keep]))
        if not src_parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float32)
        return np.concatenate(src_parts), np.concatenate(dst_parts), np.concatenate(dist_parts)
