"""Time and peak memory of ``thresher.filter.filter_dataset`` from 10k to 1M embeddings.

Data: synthetic, realistic-ish 64-d embeddings — a mixture of 100 Gaussian clusters, each on
its own random 12-dimensional subspace (real embeddings have a low intrinsic dimension) with a
little isotropic noise; 4% of the points are planted near-duplicates (a copy of another point
plus noise at 1% of the cluster scale) and 1% planted outliers (far from every cluster).

Every case runs in a fresh subprocess and reports its peak resident memory from
``resource.getrusage`` (tracemalloc misses numpy/faiss allocations). The exact route is
compared with the scalable one (time ratio, Jaccard of the removed sets) at the sizes where
it runs (its condensed distance matrix needs ~3.2 GB at 20k, ~20 GB at 50k), and the
approximate k-NN-graph route (the default beyond 300k) with the exact-range one below that.

    python benchmarks/bench_filter_scale.py                       # 10k 50k 200k 1M
    python benchmarks/bench_filter_scale.py --sizes 10000 20000 --exact-max 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 64


def make_embeddings(
    n: int, *, dim: int = DIM, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x (n, dim) float32, planted copy rows, their source rows, planted outlier rows)``."""
    rng = np.random.default_rng(seed)
    n_centres, rank = 100, 12
    centres = rng.normal(size=(n_centres, dim)) * 4.0
    bases = rng.normal(size=(n_centres, rank, dim)) / np.sqrt(rank)
    scale = rng.uniform(0.5, 1.5, size=n_centres)
    cluster = rng.integers(0, n_centres, size=n)
    x = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):  # bounded temporaries at 1M
        e = min(s + 100_000, n)
        c = cluster[s:e]
        z = rng.normal(size=(e - s, rank))
        x[s:e] = (
            centres[c]
            + np.einsum("nk,nkd->nd", z, bases[c]) * scale[c, None]
            + rng.normal(size=(e - s, dim)) * 0.05
        )
    n_dup, n_out = int(0.04 * n), int(0.01 * n)
    perm = rng.permutation(n)
    dup_rows, src_rows, out_rows = (
        perm[:n_dup],
        perm[n_dup : 2 * n_dup],
        perm[2 * n_dup : 2 * n_dup + n_out],
    )
    x[dup_rows] = x[src_rows] + rng.normal(size=(n_dup, dim)).astype(np.float32) * 0.01 * scale[
        cluster[src_rows], None
    ].astype(np.float32)
    x[out_rows] = rng.uniform(-20.0, 20.0, size=(n_out, dim)).astype(np.float32)
    return x, dup_rows, src_rows, out_rows


def run_case(
    n: int, method: str, outlier_score: str, similar: float, out: Path
) -> dict[str, object]:
    """One filter run in this process; the removed ids go to ``out`` for comparisons."""
    from thresher.filter import filter_dataset

    x, dup_rows, src_rows, out_rows = make_embeddings(n)
    start = time.perf_counter()
    # "scalable-approx": the approximate k-NN-graph route forced below its default range
    options = {"exact_graph_max": 0} if method == "scalable-approx" else {}
    res = filter_dataset(
        x,
        outliers=0.01,
        similar=similar,
        projection="none",
        method=method.removesuffix("-approx"),
        outlier_score=outlier_score,
        duplicate_options=options,
    )
    seconds = time.perf_counter() - start
    np.save(out, res.removed_ids.astype(np.int64))
    dup_info = res.params["groups"]["all"].get("duplicates", {})
    return {
        "n": n,
        "method": method,
        "outlier_score": outlier_score,
        "seconds": round(seconds, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
        "planted_outliers_found": round(float(np.mean(res.is_outlier[out_rows])), 4),
        # a planted copy or its source must go; either is right (they are the same item)
        "planted_duplicates_found": round(
            float(np.mean(res.is_similar[dup_rows] | res.is_similar[src_rows])), 4
        ),
        "removed": int((~res.kept).sum()),
        "kept": int(res.kept.sum()),
        "duplicates": {k: v for k, v in dup_info.items() if k != "route"},
    }


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.union1d(a, b).shape[0]
    return float(np.intersect1d(a, b).shape[0] / union) if union else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000, 1_000_000]
    )
    parser.add_argument(
        "--exact-max", type=int, default=20_000, help="largest N for the exact route"
    )
    parser.add_argument("--outlier-score", default="knn", choices=["knn", "glosh", "mst"])
    parser.add_argument("--similar", type=float, default=0.10, help="near-duplicate share")
    parser.add_argument(
        "--approx-max",
        type=int,
        default=200_000,
        help="up to this N also run the approximate k-NN-graph route and compare",
    )
    parser.add_argument("--case", nargs=3, metavar=("N", "METHOD", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        n, method, out = int(args.case[0]), args.case[1], Path(args.case[2])
        print(json.dumps(run_case(n, method, args.outlier_score, args.similar, out)))
        return

    env = dict(os.environ, THRESHER_PROGRESS="0")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            methods = ["scalable"] + (["exact"] if n <= args.exact_max else [])
            if 20_000 < n <= args.approx_max:
                methods.append("scalable-approx")
            results = {}
            for method in methods:
                out = Path(tmp) / f"{n}_{method}.npy"
                cmd = [sys.executable, __file__, "--outlier-score", args.outlier_score]
                cmd += ["--similar", str(args.similar)]
                cmd += ["--case", str(n), method, str(out)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(json.dumps({"n": n, "method": method, "error": proc.stderr[-2000:]}))
                    continue
                results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
                results[method]["removed_file"] = out
                printable = {k: v for k, v in results[method].items() if k != "removed_file"}
                print(json.dumps(printable), flush=True)
            for ref, other in (("exact", "scalable"), ("scalable", "scalable-approx")):
                if {ref, other} <= results.keys():
                    a, b = results[ref], results[other]
                    print(
                        json.dumps(
                            {
                                "n": n,
                                "compare": f"{other} vs {ref}",
                                f"time_ratio_{ref}_over_{other}": round(
                                    float(a["seconds"]) / float(b["seconds"]), 2
                                ),
                                "jaccard_removed": round(
                                    jaccard(np.load(a["removed_file"]), np.load(b["removed_file"])),
                                    4,
                                ),
                            }
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
