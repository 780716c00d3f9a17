"""k-center greedy (`kcenter_order`) against the loop it replaced, which re-marked every centre
at every step, on the same embeddings in the same process: time, ratio and equal output.

    python benchmarks/bench_kcenter.py --n 20000 --keep 0.9
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from thresher.filter.pruning import kcenter_order


def reference_order(x: np.ndarray, *, picks: int, seed: int) -> np.ndarray:
    """The previous implementation, kept here as the reference (O(picks^2) re-marking)."""
    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    first = int(np.random.default_rng(seed).integers(n))
    order = [first]
    dist = np.maximum(sq + sq[first] - 2.0 * (x @ x[first]), 0.0)
    dist[first] = -1.0
    for _ in range(1, picks):
        nxt = int(np.argmax(dist))
        order.append(nxt)
        dist = np.minimum(dist, np.maximum(sq + sq[nxt] - 2.0 * (x @ x[nxt]), 0.0))
        dist[np.asarray(order)] = -1.0
    rest = np.setdiff1d(np.arange(n), np.asarray(order))
    rest = rest[np.argsort(-dist[rest], kind="stable")]
    return np.concatenate([np.asarray(order, dtype=np.int64), rest.astype(np.int64)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--keep", type=float, default=0.9)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(size=(args.n, args.dim)).astype(np.float32)
    picks = int(np.ceil(args.keep * args.n))
    start = time.perf_counter()
    ours = kcenter_order(x, picks=picks, seed=0)
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    ref = reference_order(x, picks=picks, seed=0)
    t_ref = time.perf_counter() - start
    same = np.array_equal(ours, ref)
    print(f"k-center greedy, n={args.n:,} x {args.dim}, {picks:,} picks")
    print(f"  kcenter_order  {t_ours:8.1f} s")
    print(f"  reference      {t_ref:8.1f} s   ratio {t_ref / t_ours:.1f}x   same order: {same}")


if __name__ == "__main__":
    main()
