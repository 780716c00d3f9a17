"""Nearest neighbours with faiss: exact (flat) search for small sets, an inverted-file index
(IVF-Flat, k-means on a seeded sample, deterministic) for large ones.

Measured on the 2-core development machine (shared, 64-d clustered data): a flat k-NN pass
over 50k points takes ~17 s and one over 200k ~7 min, so flat search stops at 20k. IVF with
``nlist = 2 sqrt(N)`` cells and ``nprobe = 8`` gives the 16 nearest neighbours at recall 0.99
in ~9 s at 200k. HNSW (faiss, M=16) was no faster at equal recall and builds its graph in a
thread-dependent order, so its results change from run to run; IVF's do not.

Range queries on an IVF index can also be *exact*: a cell whose centroid lies farther from
the query than the cell's radius plus the search radius cannot hold a hit (triangle
inequality), so probing every other cell finds all pairs (``within(..., exact=True)``).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from thresher.progress import track

Metric = Literal["l2", "cosine"]

EXACT_MAX_ITEMS = 20_000
_BLOCK = 8192
_RANGE_BLOCK = 1024
_BOUND_MARGIN = 1e-4  # float32 centroids and radii: probe slightly more, never fewer


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
        (:func:`normalise_rows`); distances are then ``1 - cos = |a - b|^2 / 2``.
    metric : ``"l2"`` (Euclidean distances) or ``"cosine"``.
    exact : flat (exact) search; ``None`` = exact up to :data:`EXACT_MAX_ITEMS` items.
    seed : seed of the IVF k-means training sample.
    nprobe : IVF cells visited per approximate query (default 8).
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
        self.nlist = 0
        self._radius: np.ndarray | None = None
        if self.exact:
            self.index: Any = faiss.IndexFlatL2(d)  # or IndexIVFFlat below
        else:
            self.nlist = int(min(max(16, round(2 * math.sqrt(n))), 16384, n))
            self._quantiser = faiss.IndexFlatL2(d)  # faiss does not own it: keep it alive
            ivf = faiss.IndexIVFFlat(self._quantiser, d, self.nlist)
            ivf.cp.seed = int(seed)
            ivf.cp.min_points_per_centroid = 1  # small sets: no "too few points" message
            rng = np.random.default_rng(seed)
            n_train = min(n, 40 * self.nlist)
            ivf.train(self.x[np.sort(rng.choice(n, size=n_train, replace=False))])
            ivf.nprobe = int(nprobe or 8)
            self.nprobe = ivf.nprobe
            self.index = ivf
        self.index.add(self.x)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _to_distance(self, sq: np.ndarray) -> np.ndarray:
        sq = np.maximum(sq, 0.0)
        if self.metric == "cosine":
            return np.minimum(0.5 * sq, 2.0).astype(np.float32)
        return np.sqrt(sq).astype(np.float32)

    def _to_sq(self, radius: float) -> float:
        return 2.0 * radius if self.metric == "cosine" else radius * radius

    def knn(self, k: int, *, desc: str = "neighbours") -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other points of every point.

        Returns
        -------
        distances : ``(N, k)`` float32, ascending per row (``inf`` where none was found).
        indices : ``(N, k)`` int64 (``-1`` where an approximate index found fewer).
        """
        n = len(self)
        dist = np.empty((n, k), dtype=np.float32)
        idx = np.empty((n, k), dtype=np.int64)
        starts = range(0, n, _BLOCK)
        for s in track(starts, total=len(starts), desc=desc):
            e = min(s + _BLOCK, n)
            sq, nb = self.index.search(self.x[s:e], k + 1)
            # The point itself is usually first, but exact duplicates may come before it:
            # move "self" to the end (stable) and drop the last column.
            is_self = nb == np.arange(s, e)[:, None]
            order = np.argsort(is_self, axis=1, kind="stable")
            nb = np.take_along_axis(nb, order, axis=1)[:, :k]
            sq = np.take_along_axis(sq, order, axis=1)[:, :k]
            dist[s:e] = self._to_distance(sq)
            idx[s:e] = nb
        dist[idx < 0] = np.inf
        return dist, idx

    def within(
        self,
        rows: np.ndarray,
        radius: float,
        *,
        exact: bool = False,
        max_pairs: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """All pairs ``(rows[i], j)`` with distance below ``radius``, ``j != rows[i]``.

        A flat index is always exact; an IVF index is exact with ``exact=True`` (every cell
        that may hold a hit is probed) and approximate (``nprobe`` cells) otherwise.
        Returns ``(src, dst, dist)``, or None once more than ``max_pairs`` pairs were found.
        """
        rows = np.asarray(rows, dtype=np.int64)
        sq_radius = self._to_sq(radius)
        src_parts, dst_parts, dist_parts = [], [], []
        total = 0
        starts = range(0, rows.shape[0], _RANGE_BLOCK)
        for s in track(starts, total=len(starts), desc="range search"):
            q = rows[s : s + _RANGE_BLOCK]
            if exact and not self.exact:
                lims, sq, nb = self._bounded_range(self.x[q], sq_radius)
            else:
                lims, sq, nb = self.index.range_search(self.x[q], float(sq_radius))
            counts: np.ndarray = np.diff(np.asarray(lims, dtype=np.int64))
            src = np.repeat(q, counts.astype(np.int64))
            keep = nb != src
            total += int(keep.sum())
            if max_pairs is not None and total > max_pairs:
                return None
            src_parts.append(src[keep])
            dst_parts.append(nb[keep].astype(np.int64))
            dist_parts.append(self._to_distance(sq[keep]))
        if not src_parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty.copy(), np.empty(0, dtype=np.float32)
        return np.concatenate(src_parts), np.concatenate(dst_parts), np.concatenate(dist_parts)

    def _bounded_range(
        self, q: np.ndarray, sq_radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact IVF range search: probe every cell with ``|q - c| - r_c < radius``."""
        if self._radius is None:
            self._centroids = self._quantiser.reconstruct_n(0, self.nlist)
            _, cell = self._quantiser.search(self.x, 1)  # the cells ``add`` assigned
            cell = cell[:, 0]
            gap = np.linalg.norm(self.x - self._centroids[cell], axis=1)
            self._radius = np.zeros(self.nlist, dtype=np.float64)
            np.maximum.at(self._radius, cell, gap)
        centroids = self._centroids
        c_sq = np.einsum("ij,ij->i", centroids, centroids)
        q_sq = np.einsum("ij,ij->i", q, q)
        d_sq = np.maximum(q_sq[:, None] + c_sq[None, :] - 2.0 * (q @ centroids.T), 0.0)
        may_hit = np.sqrt(d_sq) - self._radius[None, :] < math.sqrt(sq_radius) + _BOUND_MARGIN
        width = max(int(may_hit.sum(axis=1).max()), 1)
        order = np.argsort(~may_hit, axis=1, kind="stable")[:, :width]
        keys = np.where(np.take_along_axis(may_hit, order, axis=1), order, -1)
        self.index.nprobe = width
        try:
            return self.index.range_search_preassigned(
                q,
                float(sq_radius),
                keys.astype(np.int64),
                np.take_along_axis(d_sq, order, axis=1).astype(np.float32),
            )
        finally:
            self.index.nprobe = self.nprobe
