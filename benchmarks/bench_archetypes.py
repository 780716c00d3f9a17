"""Time and peak memory of ``thresher.diagnose.archetypes`` on up to 1,000,000 64-d embeddings.

Data: synthetic 64-d embeddings of 10 long-tailed classes (100:1, exponential), each class a
mixture of 5 Gaussian clusters in one shared 12-dimensional subspace (plus a little isotropic
noise), so classes overlap and all four archetypes occur.

Every case runs in a fresh subprocess limited to ``--threads`` (default 2) BLAS/OpenMP threads
and reports its peak resident memory from ``resource.getrusage``. Cases:

* ``faiss-<method>``: the whole analysis (neighbours, archetypes, true-positive shares, medoid
  prototypes) with faiss neighbours, ``exact`` (flat) or ``ivf``;
* ``sklearn``: the same analysis with neighbours from scikit-learn's ``NearestNeighbors``
  (brute force), at a size both run, for the time ratio;
* at the comparison size, the share of items whose archetype under IVF equals the exact one.

    python benchmarks/bench_archetypes.py                  # 50k compare, 1M with faiss (ivf)
    python benchmarks/bench_archetypes.py --sizes 200000 --methods exact ivf --compare 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DIM = 64
CLASSES = 10


def make_embeddings(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x (n, 64) float32, labels (n,), predictions (n,))`` long-tailed at 100:1."""
    rng = np.random.default_rng(seed)
    share = 100.0 ** (-np.arange(CLASSES) / (CLASSES - 1))
    labels = rng.choice(CLASSES, size=n, p=share / share.sum())
    rank, per_class = 12, 5
    # One shared 12-d subspace, so that classes overlap as real embeddings do (about 89% safe,
    # 7% border, 2% rare, 2% outliers; the tail class mostly border/rare/outlier).
    basis = rng.normal(size=(rank, DIM)) / np.sqrt(rank)
    centres = rng.normal(size=(CLASSES, per_class, rank)) * 1.5
    x = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):  # bounded temporaries
        e = min(s + 100_000, n)
        sub = rng.integers(0, per_class, size=e - s)
        z = centres[labels[s:e], sub] + rng.normal(size=(e - s, rank))
        x[s:e] = z @ basis + rng.normal(size=(e - s, DIM)) * 0.1
    wrong = rng.random(n) < 0.1
    predictions = np.where(wrong, rng.integers(0, CLASSES, size=n), labels)
    return x, labels, predictions


def _child(n: int, method: str, threads: int) -> None:
    from thresher.diagnose import archetypes, nearest_neighbours

    x, y, pred = make_embeddings(n)
    t0 = time.perf_counter()
    if method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=6, algorithm="brute", n_jobs=threads).fit(x)
        found = nn.kneighbors(x, return_distance=False)
        is_self = found == np.arange(n)[:, None]
        keep = ~is_self
        keep[~is_self.any(axis=1), -1] = False
        neighbours = found[keep].reshape(n, 5)
    else:
        neighbours = nearest_neighbours(x, k=5, method=method, threads=threads)
    t_nn = time.perf_counter() - t0
    res = archetypes(x, y, predictions=pred, k=5, neighbours=neighbours)
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "n": n,
                "method": method,
                "threads": threads,
                "seconds": round(seconds, 2),
                "neighbour_seconds": round(t_nn, 2),
                "cpu_seconds": round(_cpu_seconds(), 2),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
                "archetype_shares": (np.bincount(res.archetype, minlength=4) / n).round(4).tolist(),
                "archetype_sha": _digest(res.archetype),
            }
        )
    )
    if "BENCH_OUT" in os.environ:
        np.save(os.environ["BENCH_OUT"], res.archetype)


def _cpu_seconds() -> float:
    """User + system CPU time of this process (honest where the wall clock is shared)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]


def run_case(n: int, method: str, threads: int, out: str | None = None) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if out:
        env["BENCH_OUT"] = out
    cmd = [sys.executable, __file__, "--child", str(n), method, "--threads", str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"case {n} {method} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--methods", nargs="+", default=["ivf"], help="faiss: exact, ivf, auto")
    ap.add_argument("--compare", type=int, default=50_000, help="size for sklearn/exact/ivf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("N", "METHOD"))
    args = ap.parse_args()
    if args.child:
        _child(int(args.child[0]), args.child[1], args.threads)
        return
    import tempfile

    rows = []
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            cases = {}
            for method in ("sklearn", "exact", "ivf"):
                cases[method] = run_case(
                    args.compare, method, args.threads, out=f"{tmp}/{method}.npy"
                )
                rows.append(cases[method])
                print(json.dumps(cases[method]), flush=True)
            exact = np.load(f"{tmp}/exact.npy")
            agree = {m: float(np.mean(np.load(f"{tmp}/{m}.npy") == exact)) for m in cases}
        ratio = cases["sklearn"]["seconds"] / cases["exact"]["seconds"]
        print(
            json.dumps(
                {
                    "compare_n": args.compare,
                    "sklearn_over_faiss_exact_time": round(ratio, 2),
                    "sklearn_over_faiss_ivf_time": round(
                        cases["sklearn"]["seconds"] / cases["ivf"]["seconds"], 2
                    ),
                    "archetype_agreement_with_exact": agree,
                }
            ),
            flush=True,
        )
    for n in args.sizes:
        for method in args.methods:
            row = run_case(n, method, args.threads)
            rows.append(row)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
