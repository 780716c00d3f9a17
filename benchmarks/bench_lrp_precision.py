"""Is LRP faithful under bf16? Relevance maps (eq. 1), class scores (eq. 2) and the search's
class choice, computed in bf16 autocast against fp32 on the same trained models.

LRP-GUS picks, at every iteration, the class whose negative relevance intensity changed most
(``max_abs_delta`` of eq. 2 between consecutive iterations). This script trains ``--models``
LeNets (Table 2) on nested real-MNIST subsets of the paper's first iteration size (``--p0`` per
class, shrinking one class by 20% each time as the search does), computes each model's class
scores once in fp32 and once in bf16, and reports

* the per-image Pearson correlation of the normalised maps (bf16 against fp32),
* the relative difference of the class-score vectors ``f`` (eq. 2),
* whether the class chosen from consecutive models is the same in both precisions,

plus the time of each, side by side in one process.

    python benchmarks/bench_lrp_precision.py                 # 6 models, p0 = 2000
    python benchmarks/bench_lrp_precision.py --models 4 --p0 500 --epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
import torch

from thresher.data import load_dataset
from thresher.explain import LRPSettings
from thresher.explain.lrp import class_relevance, lrp_maps
from thresher.models import transform_for
from thresher.precision import resolve_precision
from thresher.train import fit, get_recipe


def precision_context(precision: str) -> contextlib.AbstractContextManager[None]:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--p0", type=int, default=2000, help="images per class of the first model")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--maps", type=int, default=1000, help="images whose maps are correlated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--root", default=os.environ.get("THRESHER_DATA", "../shared/data"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if resolve_precision("auto", torch.device("cpu")) != "bf16":
        raise SystemExit("this CPU has no bf16 instructions; nothing to compare")
    train = load_dataset("mnist", root=args.root, split="train")
    labels = np.asarray(train.labels)
    tf = transform_for("mnist_lenet")
    rec = get_recipe("paper-mnist").replace(epochs=args.epochs)
    settings = LRPSettings()  # the paper's epsilon rule, epsilon 1e-4
    rng = np.random.default_rng(0)
    orders = [rng.permutation(np.flatnonzero(labels == c)) for c in range(10)]
    counts = np.full(10, args.p0)

    f_by: dict[str, list[np.ndarray]] = {"fp32": [], "bf16": []}
    seconds = {"fp32": 0.0, "bf16": 0.0}
    corr_all: list[float] = []
    print(f"{args.models} LeNets, p0 = {args.p0}, {args.epochs} epochs, LRP epsilon rule")
    print(f"{'model':>5s} {'images':>7s} {'map r (min)':>12s} {'map r (mean)':>13s} "
          f"{'|f_bf16 - f_fp32| / |f_fp32|':>29s}")  # fmt: skip
    for m in range(args.models):
        pos = np.sort(np.concatenate([orders[c][: counts[c]] for c in range(10)]))
        net = fit("mnist_lenet", train, recipe=rec, seed=m, indices=pos, precision="auto").model
        for prec in ("fp32", "bf16"):
            t = time.perf_counter()
            with precision_context(prec):
                rel = class_relevance(
                    net,
                    train.images[pos],
                    labels[pos],
                    num_classes=10,
                    transform=tf,
                    settings=settings,
                )
            seconds[prec] += time.perf_counter() - t
            f_by[prec].append(rel.negative_intensity())
        sample = pos[:: max(1, len(pos) // args.maps)][: args.maps]
        ref = lrp_maps(net, train.images[sample], labels[sample], transform=tf, settings=settings)
        with precision_context("bf16"):
            low = lrp_maps(
                net, train.images[sample], labels[sample], transform=tf, settings=settings
            )
        a = ref.reshape(len(sample), -1).astype(np.float64)
        b = low.reshape(len(sample), -1).astype(np.float64)
        a -= a.mean(1, keepdims=True)
        b -= b.mean(1, keepdims=True)
        r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-30)
        corr_all += r.tolist()
        f32, f16 = f_by["fp32"][-1], f_by["bf16"][-1]
        rel_diff = np.linalg.norm(f16 - f32) / np.linalg.norm(f32)
        print(f"{m:5d} {len(pos):7d} {r.min():12.4f} {r.mean():13.4f} {rel_diff:29.4%}",
              flush=True)  # fmt: skip
        # the search's next step: shrink the class with the largest score change by 20%
        c = int(np.argmax(np.abs(f32 - f_by["fp32"][-2]))) if m else int(np.argmax(np.abs(f32)))
        counts[c] = int(counts[c] * 0.8)

    same = 0
    for m in range(1, args.models):
        pick = {p: int(np.argmax(np.abs(f_by[p][m] - f_by[p][m - 1]))) for p in ("fp32", "bf16")}
        same += pick["fp32"] == pick["bf16"]
        print(f"step {m}: class chosen fp32 {pick['fp32']}, bf16 {pick['bf16']}")
    print(f"same class chosen in {same}/{args.models - 1} steps; map correlation over "
          f"{len(corr_all)} maps: min {min(corr_all):.4f}, mean {np.mean(corr_all):.4f}")  # fmt: skip
    print(f"relevance time: fp32 {seconds['fp32']:.1f} s, bf16 {seconds['bf16']:.1f} s "
          f"({seconds['fp32'] / seconds['bf16']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
