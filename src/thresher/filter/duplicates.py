"""Semantic near-duplicates: average-linkage agglomerative clustering on cosine distance down to
exactly ``K`` clusters, then one kept item per cluster (thesis section 4.2.2).

Two routes give the same clusters:

* ``exact`` — scipy's average linkage on the full condensed distance matrix: O(M^2) memory
  (20k items: ~3.2 GB), refused above ``max_items``.
* ``scalable`` — average linkage never merges two clusters unless some pair across them is
  closer than the merge height (the average of the cross distances is at least their
  minimum). So, with ``t`` a cosine-distance threshold: link every pair closer than ``t``,
  split the graph into connected components, run exact average linkage inside each
  component, and sort the merge heights of all components together. Every merge of the
  global algorithm below ``t`` happens inside one component with the same height, so the
  lowest ``M - K`` merges *are* the global ones whenever the ``(M - K)``-th height is below
  ``t``; otherwise ``t`` grows by ``growth`` and the step repeats. The start is single
  linkage's ``(M - K)``-th height on a k-NN graph (a lower bound for average linkage's).
  The pairs under ``t`` are listed exactly up to ``exact_graph_max`` items (flat faiss k-NN
  plus a range search from the points whose ``k`` neighbours all lie under ``t`` up to
  ``flat_max``; above it an IVF range search that probes every cell the triangle inequality
  cannot rule out), and from an approximate IVF k-NN graph beyond (``info["exact"]`` False).

  Fallback: a component larger than ``max_component`` (a chain) is clustered by
  scikit-learn's connectivity-constrained average linkage over its graph edges (averages over
  linked pairs only): an approximation, counted in ``info["fallback_components"]`` /
  ``info["fallback_items"]``.

* ``auto`` — ``exact`` up to :data:`AUTO_EXACT_MAX` items, ``scalable`` above.

Cosine distance is ``1 - cos`` on L2-normalised rows, computed as half the squared Euclidean
distance of the unit vectors (accurate for near-duplicates). All-zero rows have no direction
and are refused.

Kept item: the member whose cosine similarity to its cluster centre (the mean of the members'
unit vectors) is largest, ties broken by the smaller id; every other member names it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from thresher.errors import ConfigError, DataError
from thresher.neighbours import EXACT_MAX_ITEMS, NeighbourIndex, normalise_rows
from thresher.progress import track
from thresher.registry import Registry

DuplicateFinder = Callable[..., "DuplicateClusters"]
DUPLICATE_METHODS: Registry[DuplicateFinder] = Registry("duplicate finder", error=ConfigError)

AUTO_EXACT_MAX = 20_000
# Up to here the scalable route lists the pairs under its threshold exactly (flat index, or
# IVF with bounded cells: ~12 s per pass at 200k on 2 cores); beyond, from an approximate
# k-NN graph (a bounded pass took ~220 s at 1M).
EXACT_GRAPH_MAX = 300_000
EXACT_MAX_ITEMS_DEFAULT = 40_000
_EDGE_MARGIN = 1e-5  # faiss works in float32: take a few more pairs, never fewer


@dataclass(frozen=True)
class DuplicateClusters:
    """``M`` items grouped into ``K`` clusters, one kept item per cluster.

    Attributes:
        labels: ``(M,)`` int64 cluster of each item, numbered by first appearance.
        representative: ``(M,)`` int64 row of the kept member of each item's cluster
            (an item is its own representative when kept).
        similarity: ``(M,)`` float64 cosine similarity of each item to its representative.
        method: ``"exact"`` or ``"scalable"``.
        info: what the route did (threshold, components, fallbacks, ...), JSON-ready.
    """

    labels: np.ndarray
    representative: np.ndarray
    similarity: np.ndarray
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def is_kept(self) -> np.ndarray:
        """``(M,)`` bool, the item is its cluster's representative."""
        return self.representative == np.arange(self.labels.shape[0])


def find_duplicates(
    x: np.ndarray,
    *,
    n_clusters: int,
    ids: np.ndarray | None = None,
    method: str = "auto",
    seed: int = 0,
    **options: Any,
) -> DuplicateClusters:
    """Cluster ``x`` ``(M, D)`` into exactly ``n_clusters`` by average linkage on cosine
    distance and pick the kept member of each cluster.

    Parameters
    ----------
    n_clusters : ``K``, ``1 <= K <= M``.
    ids : ``(M,)`` str, break ties between equally central members (default: row numbers).
    method : a name in :data:`DUPLICATE_METHODS` (``auto``, ``exact``, ``scalable``).
    seed : seeds the approximate index of the scalable route.
    options : route options (``exact``: ``max_items``; ``scalable``: ``k``,
        ``max_component``, ``exact_graph_max``, ``flat_max``, ``growth``, ``nprobe``,
        ``max_iterations``).
    """
    finder = DUPLICATE_METHODS.get(method)
    x = np.asarray(x, dtype=np.float32)
    m = x.shape[0]
    if not 1 <= n_clusters <= m:
        raise ConfigError(
            f"cannot cluster {m} items into {n_clusters} clusters; "
            "lower the near-duplicate share or keep at least one item"
        )
    ids = np.arange(m).astype(str) if ids is None else np.asarray(ids).astype(str)
    xn = normalise_rows(x)
    zero = ~np.any(xn != 0, axis=1)
    if zero.any():
        bad = str(ids[int(np.argmax(zero))])
        raise DataError(
            f"embedding of id {bad!r} is all zeros ({int(zero.sum())} such rows), so its "
            "cosine distance is undefined; drop those rows or reduce with PCA, which centres"
        )
    return finder(xn, n_clusters=n_clusters, ids=ids, seed=seed, **options)


# --- shared pieces --------------------------------------------------------------------------


def cosine_condensed(xn: np.ndarray) -> np.ndarray:
    """Condensed ``1 - cos`` of unit rows, as ``|a - b|^2 / 2`` in float64."""
    from scipy.spatial.distance import pdist

    d = pdist(np.asarray(xn, dtype=np.float64), "sqeuclidean")
    d *= 0.5
    return d


def _average_linkage(xn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merges of exact average linkage, in order: ``(a, b, height)`` with ``a``, ``b`` one
    leaf (local row) of each merged cluster."""
    from scipy.cluster.hierarchy import linkage

    c = xn.shape[0]
    if c == 2:
        d = cosine_condensed(xn)
        return np.array([0]), np.array([1]), d
    z = linkage(cosine_condensed(xn), method="average")
    return (*_leaf_pairs(z[:, 0].astype(np.int64), z[:, 1].astype(np.int64), c), z[:, 2])


def _leaf_pairs(left: np.ndarray, right: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Map scipy-style node ids (``< c`` leaves, ``c + i`` = merge ``i``) to one leaf each."""
    leaf = np.empty(c + left.shape[0], dtype=np.int64)
    leaf[:c] = np.arange(c)
    for i, node in enumerate(left.tolist()):
        leaf[c + i] = leaf[node]
    return leaf[left], leaf[right]


def _cut(
    m: int, a: np.ndarray, b: np.ndarray, height: np.ndarray, group: np.ndarray, n_merges: int
) -> np.ndarray:
    """Labels after the ``n_merges`` lowest merges (ties: by group, then merge order)."""
    order = np.lexsort((np.arange(height.shape[0]), group, height))[:n_merges]
    graph = sparse.coo_matrix(
        (np.ones(order.shape[0], dtype=np.int8), (a[order], b[order])), shape=(m, m)
    ).tocsr()
    _, labels = connected_components(graph, directed=False)
    return _first_appearance(labels)


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, ... in the order of their first member."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return rank[inverse.ravel()]


def representatives(xn: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``(M,)`` row of the member nearest (cosine) to the mean unit vector of its cluster."""
    m = xn.shape[0]
    k = int(labels.max()) + 1
    x64 = np.asarray(xn, dtype=np.float64)
    member = sparse.csr_matrix((np.ones(m), (labels, np.arange(m))), shape=(k, m))
    centre = np.asarray(member @ x64) / np.asarray(member.sum(axis=1))
    norm = np.linalg.norm(centre, axis=1)
    cos = np.einsum("ij,ij->i", x64, centre[labels])
    cos = np.divide(cos, norm[labels], out=np.zeros(m), where=norm[labels] > 0)
    order = np.lexsort((ids, -cos, labels))  # per cluster: most central first, then id
    first = np.ones(m, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    rep_of_cluster = np.empty(k, dtype=np.int64)
    rep_of_cluster[labels[order][first]] = order[first]
    return rep_of_cluster[labels]


def _finish(
    xn: np.ndarray, labels: np.ndarray, ids: np.ndarray, method: str, info: dict[str, Any]
) -> DuplicateClusters:
    rep = representatives(xn, labels, ids)
    sim = np.einsum(
        "ij,ij->i", np.asarray(xn, dtype=np.float64), np.asarray(xn[rep], dtype=np.float64)
    )
    return DuplicateClusters(
        labels=labels,
        representative=rep,
        similarity=np.clip(sim, -1.0, 1.0),
        method=method,
        info=info,
    )


# --- exact ----------------------------------------------------------------------------------


@DUPLICATE_METHODS.decorator("exact")
def exact_duplicates(
    xn: np.ndarray,
    *,
    n_clusters: int,
    ids: np.ndarray,
    seed: int = 0,
    max_items: int = EXACT_MAX_ITEMS_DEFAULT,
) -> DuplicateClusters:
    """Global average linkage (scipy) on unit rows ``xn``; see :func:`find_duplicates`."""
    m = xn.shape[0]
    n_merges = m - n_clusters
    info: dict[str, Any] = {"route": "exact", "items": m, "clusters": n_clusters}
    if n_merges == 0:
        return _finish(xn, np.arange(m), ids, "exact", info)
    if m > max_items:
        gb = m * (m - 1) / 2 * 8 * 2 / 1e9  # condensed matrix + scipy's working copy
        raise ConfigError(
            f"exact near-duplicate search on {m} items needs about {gb:.0f} GB; "
            "use method='scalable' (or 'auto')"
        )
    a, b, h = _average_linkage(xn)
    labels = _cut(m, a, b, h, np.zeros(h.shape[0], dtype=np.int64), n_merges)
    return _finish(xn, labels, ids, "exact", info)


# --- scalable -------------------------------------------------------------------------------


@DUPLICATE_METHODS.decorator("scalable")
def scalable_duplicates(
    xn: np.ndarray,
    *,
    n_clusters: int,
    ids: np.ndarray,
    seed: int = 0,
    k: int = 16,
    max_component: int = 10_000,
    exact_graph_max: int = EXACT_GRAPH_MAX,
    flat_max: int = EXACT_MAX_ITEMS,
    growth: float = 1.25,
    nprobe: int | None = None,
    max_iterations: int = 40,
) -> DuplicateClusters:
    """Average linkage by connected components of the cosine graph; see the module docs."""
    m = xn.shape[0]
    n_merges = m - n_clusters
    info: dict[str, Any] = {"route": "scalable", "items": m, "clusters": n_clusters}
    if n_merges == 0:
        return _finish(xn, np.arange(m), ids, "scalable", info | {"exact": True})
    if growth <= 1.0:
        raise ConfigError(f"growth must be > 1, got {growth}")
    if max_component < 2:
        raise ConfigError(f"max_component must be >= 2, got {max_component}")
    k = max(1, min(int(k), m - 1))
    index = NeighbourIndex(xn, metric="cosine", exact=m <= flat_max, seed=seed, nprobe=nprobe)
    knn_dist, knn_idx = index.knn(k, desc="near-duplicate graph")
    edges = _EdgeSource(index, knn_dist, knn_idx, exact=m <= exact_graph_max, growth=growth)
    t = _initial_threshold(knn_dist, knn_idx, n_merges)
    iteration = 0
    while True:
        iteration += 1
        src, dst, dist = edges.below(t + _EDGE_MARGIN)
        n_comp, comp = connected_components(
            sparse.coo_matrix((np.ones(src.shape[0], np.int8), (src, dst)), shape=(m, m)),
            directed=False,
        )
        a, b, h, group, stats = _component_merges(
            xn, comp, n_comp, max_component, knn_idx, (src, dst, dist)
        )
        below = int((h < t).sum())
        if below >= n_merges or t >= 2.0 or iteration >= max_iterations:
            break
        t = min(t * growth, 2.0 + _EDGE_MARGIN)
    if h.shape[0] < n_merges:
        raise ConfigError(
            f"the near-duplicate graph allows only {h.shape[0]} of the {n_merges} merges "
            f"needed; raise k (now {k}) or lower the near-duplicate share"
        )
    labels = _cut(m, a, b, h, group, n_merges)
    info |= {
        "threshold": float(t),
        "iterations": iteration,
        "k": k,
        "graph": edges.kind,
        "merges_below_threshold": below,
        "exact": bool(edges.complete and below >= n_merges and stats["fallback_components"] == 0),
        **stats,
    }
    return _finish(xn, labels, ids, "scalable", info)


def _initial_threshold(knn_dist: np.ndarray, knn_idx: np.ndarray, n_merges: int) -> float:
    """Start from single linkage's ``n_merges``-th height on the k-NN graph: average
    linkage's heights are never lower (its clusters refine single linkage's at any height)."""
    m = knn_idx.shape[0]
    ok = knn_idx >= 0
    rows = np.repeat(np.arange(m), knn_idx.shape[1])[ok.ravel()]
    # Distances shifted by a constant (MSTs do not change) so that 0 stays an edge.
    w = knn_dist[ok].astype(np.float64) + 1.0
    graph = sparse.coo_matrix((w, (rows, knn_idx[ok])), shape=(m, m)).tocsr()
    forest = minimum_spanning_tree(graph.maximum(graph.T))
    heights = np.sort(forest.data - 1.0)
    if heights.shape[0] >= n_merges:
        base = float(heights[n_merges - 1])
    else:
        base = float(knn_dist[np.isfinite(knn_dist)].max())
    return max(base * 1.05, base + 1e-6)


class _EdgeSource:
    """The pairs closer than a threshold, three ways:

    * flat index (small sets): the k-NN pairs plus an exact range search from the points
      whose ``k`` neighbours all lie under the threshold (they may have more) — exact;
    * IVF index, ``exact=True``: an exact range search over all points (cells bounded by the
      triangle inequality), run at ``growth^2`` times the threshold and reused while the
      threshold grows — exact;
    * IVF index, ``exact=False`` (beyond ``exact_graph_max``): the approximate k-NN pairs plus
      an approximate (``nprobe``) range search from the saturated points.

    ``complete`` turns False when a range search had to be skipped (too many pairs).
    """

    def __init__(
        self,
        index: NeighbourIndex,
        knn_dist: np.ndarray,
        knn_idx: np.ndarray,
        *,
        exact: bool,
        growth: float,
    ) -> None:
        self.index = index
        self.knn_dist = knn_dist
        self.knn_idx = knn_idx
        self.bounded = exact and not index.exact
        self.complete = index.exact or exact
        self.growth = growth
        self.max_pairs = max(5_000_000, 20 * knn_idx.shape[0])
        self._cache: tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if index.exact:
            self.kind = "flat"
        else:
            mode = "exact-range" if self.bounded else f"approximate, nprobe={index.nprobe}"
            self.kind = f"ivf(nlist={index.nlist}, {mode})"

    def below(self, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.bounded:
            return self._bounded_below(radius)
        m, k = self.knn_idx.shape
        ok = (self.knn_idx >= 0) & (self.knn_dist < radius)
        parts = [(np.repeat(np.arange(m), k)[ok.ravel()], self.knn_idx[ok], self.knn_dist[ok])]
        saturated = np.flatnonzero(self.knn_dist[:, -1] < radius)
        if saturated.size:
            extra = self.index.within(saturated, radius, max_pairs=self.max_pairs)
            if extra is None:
                self.complete = False
            else:
                parts.append(extra)
        return tuple(np.concatenate(p) for p in zip(*parts, strict=True))  # type: ignore[return-value]

    def _bounded_below(self, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None or radius > self._cache[0]:
            reach = min(radius * self.growth**2, 2.0 + _EDGE_MARGIN)
            rows = np.arange(len(self.index))
            found = self.index.within(rows, reach, exact=True, max_pairs=self.max_pairs)
            if found is None:  # too dense to list: fall back to the k-NN pairs
                self.bounded = False
                self.complete = False
                return self.below(radius)
            self._cache = (reach, found)
        src, dst, dist = self._cache[1]
        close = dist < radius
        return src[close], dst[close], dist[close]


def _component_merges(
    xn: np.ndarray,
    comp: np.ndarray,
    n_comp: int,
    max_component: int,
    knn_idx: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Average-linkage merges inside every component, as global leaf rows."""
    sizes = np.bincount(comp, minlength=n_comp)
    order = np.argsort(comp, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    a_parts, b_parts, h_parts, g_parts = [], [], [], []
    stats = {
        "components": int((sizes > 1).sum()),
        "largest_component": int(sizes.max()),
        "fallback_components": 0,
        "fallback_items": 0,
    }
    # Pairs: one vectorised step instead of one scipy call per two-item component.
    pair_comps = np.flatnonzero(sizes == 2)
    if pair_comps.size:
        first = order[bounds[pair_comps]]
        second = order[bounds[pair_comps] + 1]
        diff = xn[first].astype(np.float64) - xn[second].astype(np.float64)
        a_parts.append(first)
        b_parts.append(second)
        h_parts.append(0.5 * np.einsum("ij,ij->i", diff, diff))
        g_parts.append(pair_comps)
    big = np.flatnonzero(sizes > 2)
    for c in track(big, total=big.size, desc="component linkage"):
        rows = order[bounds[c] : bounds[c + 1]]
        if rows.shape[0] <= max_component:
            a, b, h = _average_linkage(xn[rows])
        else:
            a, b, h = _connectivity_linkage(xn, rows, knn_idx, edges)
            stats["fallback_components"] += 1
            stats["fallback_items"] += int(rows.shape[0])
        a_parts.append(rows[a])
        b_parts.append(rows[b])
        h_parts.append(h)
        g_parts.append(np.full(h.shape[0], c, dtype=np.int64))
    if not h_parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0), empty, stats
    return (
        np.concatenate(a_parts),
        np.concatenate(b_parts),
        np.concatenate(h_parts),
        np.concatenate(g_parts),
        stats,
    )


def _connectivity_linkage(
    xn: np.ndarray,
    rows: np.ndarray,
    knn_idx: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fallback for a giant component: average linkage restricted to graph edges (the
    component's k-NN pairs and range pairs), heights made monotone along the tree."""
    from sklearn.cluster._agglomerative import linkage_tree

    c = rows.shape[0]
    local = np.full(xn.shape[0], -1, dtype=np.int64)
    local[rows] = np.arange(c)
    nb = knn_idx[rows]
    src = np.repeat(np.arange(c), nb.shape[1])
    dst = local[np.where(nb >= 0, nb, rows[:, None]).ravel()]
    e_src, e_dst = local[edges[0]], local[edges[1]]
    inside = (e_src >= 0) & (e_dst >= 0)
    src = np.concatenate([src, e_src[inside]])
    dst = np.concatenate([dst, e_dst[inside]])
    keep = (dst >= 0) & (dst != src)
    conn = sparse.coo_matrix(
        (np.ones(int(keep.sum())), (src[keep], dst[keep])), shape=(c, c)
    ).tocsr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when it completes a split graph
        children, _, _, _, dist = linkage_tree(
            xn[rows].astype(np.float64),
            connectivity=conn,
            linkage="average",
            affinity="cosine",
            return_distance=True,
        )
    height = np.asarray(dist, dtype=np.float64).copy()
    for i, pair in enumerate(children.tolist()):  # parents never below their children
        for child in pair:
            if child >= c:
                height[i] = max(height[i], height[child - c])
    a, b = _leaf_pairs(children[:, 0].astype(np.int64), children[:, 1].astype(np.int64), c)
    return a, b, height


# --- auto -----------------------------------------------------------------------------------


@DUPLICATE_METHODS.decorator("auto")
def auto_duplicates(
    xn: np.ndarray, *, n_clusters: int, ids: np.ndarray, seed: int = 0, **options: Any
) -> DuplicateClusters:
    """``exact`` up to :data:`AUTO_EXACT_MAX` items, ``scalable`` above."""
    if xn.shape[0] <= AUTO_EXACT_MAX:
        exact_opts = {k: v for k, v in options.items() if k == "max_items"}
        return exact_duplicates(xn, n_clusters=n_clusters, ids=ids, seed=seed, **exact_opts)
    scal_opts = {k: v for k, v in options.items() if k != "max_items"}
    return scalable_duplicates(xn, n_clusters=n_clusters, ids=ids, seed=seed, **scal_opts)
