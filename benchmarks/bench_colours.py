"""Peak memory of the colour analysis (Algorithm 4) as the number of images grows 10x.

Images are synthetic 32x32 RGB batches made on the fly (never all held), labels cycle over 10
classes, and a small CNN gives the saliency. Each case runs in a fresh subprocess limited to
``--threads`` threads and reports its peak resident memory (``resource.getrusage``): the
analysis keeps only ``(classes, 14)`` counts and ``(classes, 14, 3)`` means, so the peak must
stay flat while the number of images grows.

    python benchmarks/bench_colours.py                      # 2,000 and 20,000 images
    python benchmarks/bench_colours.py --sizes 1000 10000 100000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

CLASSES = 10
BATCH = 256


def batches(n: int, *, seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n`` images in batches of 256: noise plus a class-coloured square."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, size=(CLASSES, 3), dtype=np.uint8)
    for a in range(0, n, BATCH):
        b = min(a + BATCH, n)
        labels = np.arange(a, b) % CLASSES
        images = rng.integers(0, 256, size=(b - a, 3, 32, 32), dtype=np.uint8)
        images[:, :, 8:20, 8:20] = palette[labels][:, :, None, None]
        yield images, labels


def _model() -> object:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, CLASSES),
    )


def _child(n: int, threads: int) -> None:
    import torch

    from thresher.diagnose import class_colours

    torch.set_num_threads(threads)
    model = _model()
    t0 = time.perf_counter()
    res = class_colours(
        model,  # type: ignore[arg-type]
        batches(n),
        transform=lambda b: b.float() / 255.0,
        classes=[str(c) for c in range(CLASSES)],
        device="cpu",
    )
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "images": n,
                "seconds": round(seconds, 2),
                "images_per_s": round(n / seconds, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
                "salient_pixels": int(res.counts.sum()),
                "state_bytes": int(res.counts.nbytes + res.means.nbytes),
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", type=int)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child, args.threads)
        return
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{n} images failed:\n{proc.stderr[-2000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    first, last = rows[0], rows[-1]
    print(
        json.dumps(
            {
                "images_ratio": last["images"] / first["images"],
                "peak_rss_ratio": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
