"""Kneedle: Thresher's ``knee_iteration`` against the ``kneed`` library on curves with a known knee.

The LRP-GUS ``knee`` cutoff picks the iteration where accuracy against compression bends from
flat to steep. Issue 14 asks whether the well-kept ``kneed`` package (Satopaa et al.'s Kneedle,
as ours) should replace our 25 lines. Both run side by side here on the same synthetic traces:
accuracy is flat (slope ``-m1``) up to a known compression ``r_k`` and falls steeply (slope
``-m2``) after it, plus Gaussian noise of the size seen in the trace's one-seed accuracies.
The answer is ``r_k``: we report the median absolute error in compression, the share of traces
within 0.02 of it, and how often a method finds no knee at all.

    .venv/bin/python benchmarks/bench_knee.py            # ~1 min; needs `pip install kneed`

Printed: one row per (points, noise) cell and method, then the ratio of errors (kneed / ours).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from thresher.lrp_gus.cutoff import knee_iteration

TRACES = 200  # per cell


def trace(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``n`` (compression, accuracy) points of one search with its true knee ``r_k``."""
    r = np.sort(rng.uniform(0.0, 0.97, size=n))
    r_k = float(rng.uniform(0.5, 0.85))
    m1, m2 = rng.uniform(0.01, 0.05), rng.uniform(0.6, 2.0)
    acc = 0.99 - m1 * r - m2 * np.maximum(r - r_k, 0.0)
    return r, acc + rng.normal(0.0, noise, size=n), r_k


def kneed_iteration(r: np.ndarray, acc: np.ndarray, *, interp: str) -> int | None:
    from kneed import KneeLocator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No knee/elbow found"
        loc = KneeLocator(
            r,
            acc,
            curve="concave",
            direction="decreasing",
            interp_method=interp,
            polynomial_degree=3,
        )
    if loc.knee is None:
        return None
    return int(np.argmin(np.abs(r - loc.knee)))


METHODS = {
    "thresher": lambda r, a: knee_iteration(r, a),
    "kneed": lambda r, a: kneed_iteration(r, a, interp="interp1d"),
    "kneed-poly": lambda r, a: kneed_iteration(r, a, interp="polynomial"),
}


def main() -> None:
    try:
        import kneed  # noqa: F401
    except ImportError:
        raise SystemExit("bench_knee needs kneed: pip install 'thresher[bench]'") from None
    print(f"{'points':>6} {'noise':>6} {'method':<11} {'median |err|':>12} {'within .02':>10} "
          f"{'no knee':>7} {'ms/trace':>8}")  # fmt: skip
    summary: dict[str, list[float]] = {m: [] for m in METHODS}
    for n in (30, 120):
        for noise in (0.0, 0.003, 0.01):
            rng = np.random.default_rng(1000 * n + int(noise * 1e4))
            cases = [trace(rng, n, noise) for _ in range(TRACES)]
            for name, fn in METHODS.items():
                errors, missing = [], 0
                start = time.perf_counter()
                for r, acc, r_k in cases:
                    i = fn(r, acc)
                    if i is None:
                        missing += 1
                        errors.append(1.0)  # no answer counts as the worst error
                    else:
                        errors.append(abs(float(r[i]) - r_k))
                ms = 1000 * (time.perf_counter() - start) / TRACES
                err = np.asarray(errors)
                summary[name].append(float(np.median(err)))
                print(f"{n:>6} {noise:>6.3f} {name:<11} {np.median(err):>12.4f} "
                      f"{np.mean(err <= 0.02):>10.2f} {missing:>7} {ms:>8.2f}")  # fmt: skip
    ours = np.asarray(summary["thresher"])
    for name in ("kneed", "kneed-poly"):
        ratio = np.asarray(summary[name]) / np.maximum(ours, 1e-6)
        print(f"median error {name} / thresher per cell: {np.round(ratio, 2).tolist()}")


if __name__ == "__main__":
    main()
