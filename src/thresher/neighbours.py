"""Nearest neighbours for every package (filter, diagnose, the app): one faiss index class.

Exact (flat) search for small sets, an inverted-file index (IVF-Flat, k-means on a seeded
sample, deterministic) for large ones; :func:`nearest_neighbours` is the k-NN graph the
diagnostics share, :func:`nearest_to` one item's neighbours (the app's panel).

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

from thresher.errors import ConfigError
from thresher.progress import track
from thresher.validation import check_embeddings, check_k

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
    exact_max : ``exact=None`` searches exactly up to this many items.
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        metric: Metric,
        exact: bool | None = None,
        seed: int = 0,
        nprobe: int | None = None,
        exact_max: int = EXACT_MAX_ITEMS,
    ) -> None:
        import faiss

        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.metric = metric
        n, d = self.x.shape
        self.exact = n <= exact_max if exact is None else bool(exact)
        self.nlist = 0
        self._radius: np.ndarray | None = None
        self._exact_index: Any = None
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
            ivf.nprobe = int(min(nprobe or 8, self.nlist))
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

        An item is excluded by index, so exact duplicates of it still count; rows for which
        the probed IVF cells held too few items are searched exactly.

        Returns
        -------
        distances : ``(N, k)`` float32, ascending per row.
        indices : ``(N, k)`` int64.
        """
        n = len(self)
        dist = np.empty((n, k), dtype=np.float32)
        idx = np.empty((n, k), dtype=np.int64)
        starts = range(0, n, _BLOCK)
        for s in track(starts, total=len(starts), desc=desc):
            e = min(s + _BLOCK, n)
            sq, nb = self.index.search(self.x[s:e], k + 1)
            short = (nb < 0).any(axis=1)
            if short.any():  # IVF's probed cells held fewer than k + 1 items: search exactly
                sq[short], nb[short] = self._flat().search(self.x[s:e][short], k + 1)
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

    def _flat(self) -> Any:
        """An exact index over the same rows (built on first use)."""
        import faiss

        if self._exact_index is None:
            self._exact_index = faiss.IndexFlatL2(self.x.shape[1])
            self._exact_index.add(self.x)
        return self._exact_index

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


#: :func:`nearest_neighbours` searches exactly up to this many items, with IVF above: the
#: diagnostics' graph is built once per run and reused by every analysis, so exactness is
#: kept ten times further than in the filter's repeated searches (benchmarks/README.md)
GRAPH_EXACT_MAX = 200_000
Method = Literal["auto", "exact", "ivf"]


def nearest_neighbours(
    values: np.ndarray,
    *,
    k: int = 5,
    method: Method = "auto",
    nprobe: int = 32,
    threads: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The ``k`` nearest other items of every item (squared L2): the shared k-NN graph.

    Parameters
    ----------
    values : ``(N, D)`` embeddings.
    k : neighbours per item, the item itself excluded (by index: its exact duplicates count).
    method : "exact" (flat search), "ivf" (approximate, for millions of items) or "auto"
        (exact up to :data:`GRAPH_EXACT_MAX` items).
    nprobe : IVF cells searched per query.
    threads : OpenMP threads for faiss (``None``: faiss's default).
    seed : the IVF k-means seed and training sample.

    Returns
    -------
    ``(N, k)`` int64 row indices, nearest first.
    """
    import faiss

    k = check_k(k)
    x = check_embeddings(values)
    n = x.shape[0]
    if n < k + 1:
        raise ConfigError(f"{n} items cannot have {k} neighbours each; lower k below {n}")
    if method not in ("auto", "exact", "ivf"):
        raise ConfigError(f"unknown neighbour method {method!r}; use auto, exact or ivf")
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    exact = {"exact": True, "ivf": False, "auto": None}[method]
    index = NeighbourIndex(
        x, metric="l2", exact=exact, seed=seed, nprobe=nprobe, exact_max=GRAPH_EXACT_MAX
    )
    return index.knn(k, desc="k-NN graph")[1]


def nearest_to(
    values: np.ndarray, row: int, k: int, *, metric: Metric = "cosine", norms: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` items nearest to item ``row`` (itself excluded), by an exact scan.

    One query needs no index: a scan of ``(N, D)`` is one matrix-vector product.

    Parameters
    ----------
    values : ``(N, D)`` float32.
    row : the query item.
    k : neighbours wanted (fewer when there are fewer other items).
    metric : ``"cosine"`` (similarity, higher = nearer) or ``"l2"`` (negated distance).
    norms : ``(N,)`` row norms for ``"cosine"`` (computed when not given; cache them).

    Returns
    -------
    indices : ``(k,)`` int64, nearest first (ties in index order).
    scores : ``(k,)`` float64 similarities (cosine) or negated Euclidean distances (l2).
    """
    x = np.asarray(values, dtype=np.float32)
    if metric == "cosine":
        nrm = np.linalg.norm(x, axis=1) + 1e-12 if norms is None else np.asarray(norms)
        scores = (x @ x[row]) / (nrm * nrm[row])
    else:
        scores = -np.linalg.norm(x - x[row], axis=1)
    scores = scores.astype(np.float64)
    scores[row] = -np.inf
    k = min(k, x.shape[0] - 1)
    if k <= 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top.astype(np.int64), scores[top]
