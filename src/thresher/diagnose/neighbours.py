"""k nearest neighbours in embedding space (faiss, squared L2), each item's self excluded.

``method="exact"`` is a flat (brute-force) search: exact, but O(N^2 D) work; ``"ivf"`` is an
inverted-file index (``4 sqrt(N)`` k-means cells, ``nprobe`` of them searched per query): near
exact at a small fraction of the work. ``"auto"`` is exact up to :data:`EXACT_MAX` items.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from thresher.diagnose.checks import check_k, check_values
from thresher.errors import ConfigError

#: "auto" searches exactly up to this many items and with IVF above (benchmarks/README.md)
EXACT_MAX = 200_000
Method = Literal["auto", "exact", "ivf"]


def nearest_neighbours(
    values: np.ndarray,
    *,
    k: int = 5,
    method: Method = "auto",
    nprobe: int = 32,
    threads: int | None = None,
    seed: int = 0,
    chunk: int = 65_536,
) -> np.ndarray:
    """The ``k`` nearest other items of every item.

    Parameters
    ----------
    values : ``(N, D)`` embeddings.
    k : neighbours per item, the item itself excluded.
    method : "exact" (flat search), "ivf" (approximate, for millions of items) or "auto".
    nprobe : IVF cells searched per query.
    threads : OpenMP threads for faiss (``None``: faiss's default).
    seed : the IVF k-means seed and training sample.
    chunk : queries per search call (bounds the temporary ``(chunk, k + 1)`` results).

    Returns
    -------
    ``(N, k)`` int64 row indices, nearest first. An item is excluded by index, so exact
    duplicates of it still count as neighbours.
    """
    import faiss

    k = check_k(k)
    x = check_values(values)
    n, d = x.shape
    if n < k + 1:
        raise ConfigError(f"{n} items cannot have {k} neighbours each; lower k below {n}")
    if method not in ("auto", "exact", "ivf"):
        raise ConfigError(f"unknown neighbour method {method!r}; use auto, exact or ivf")
    if threads is not None:
        faiss.omp_set_num_threads(int(threads))
    use_ivf = method == "ivf" or (method == "auto" and n > EXACT_MAX)
    flat = faiss.IndexFlatL2(d)
    if use_ivf:
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        index: Any = faiss.IndexIVFFlat(flat, d, nlist)
        index.cp.seed = int(seed)
        rng = np.random.default_rng(seed)
        sample = min(n, 50 * nlist)
        rows = np.sort(rng.choice(n, size=sample, replace=False)) if sample < n else slice(None)
        index.train(x[rows])
        index.add(x)
        index.nprobe = int(min(nprobe, nlist))
    else:
        index = flat
        index.add(x)
    out = np.empty((n, k), dtype=np.int64)
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        _, found = index.search(x[a:b], k + 1)
        short = (found < 0).any(axis=1)
        if short.any():  # IVF found fewer than k + 1 items in its cells: search those exactly
            exact = faiss.IndexFlatL2(d)
            exact.add(x)
            _, found[short] = exact.search(x[a:b][short], k + 1)
        is_self = found == np.arange(a, b)[:, None]
        keep = ~is_self
        # Ties (or IVF) can push the item out of its own k + 1: then drop the farthest instead.
        keep[~is_self.any(axis=1), -1] = False
        out[a:b] = found[keep].reshape(b - a, k)
    return out
