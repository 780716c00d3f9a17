"""Detector training throughput: Thresher's detectors against torchvision's stock builder.

Each detector trains on the same real MNIST detection canvases (``mnist-detection``) for the
same number of steps with ``fit_detector``, interleaved in this one process, best of
``--repeats`` (the machine is shared; the best run is the least disturbed). The reference is
torchvision's ``fasterrcnn_mobilenet_v3_large_320_fpn`` built offline (``det_fasterrcnn_mobilenet``,
the cheapest stock detector), so the ratio says what the small detectors buy. Where the CPU
runs bf16 (``precision=auto`` resolves to it), ``det_tiny`` is also timed in bf16 against fp32.

    python benchmarks/bench_detection_train.py                      # 64 canvases, 2 repeats
    python benchmarks/bench_detection_train.py --images 256 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from thresher.data import load_dataset
from thresher.device import cpu_model
from thresher.precision import resolve_precision
from thresher.train import get_recipe
from thresher.train.detection import fit_detector

REFERENCE = "det_fasterrcnn_mobilenet"
MODELS = ("det_tiny", "det_tiny_fcos", "det_retinanet_lite0", REFERENCE)


def images_per_second(model: str, data: object, *, precision: str, batch: int) -> float:
    recipe = get_recipe("det-tiny").replace(epochs=1, warmup_epochs=0, batch_size=batch)
    result = fit_detector(model, data, recipe=recipe, seed=0, precision=precision)  # type: ignore[arg-type]
    return result.history[0].images_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", default=os.environ.get("THRESHER_DATA"))
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    data = load_dataset("mnist-detection", root=args.root, split="train", limit=args.images)
    models = [m for m in args.models.split(",") if m]
    runs: list[tuple[str, str]] = [(m, "fp32") for m in models]
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    if bf16:
        runs.append(("det_tiny", "bf16"))
    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved: every model sees the same machine states
        for model, precision in runs:
            key = f"{model} {precision}"
            rate = images_per_second(model, data, precision=precision, batch=args.batch)
            best[key] = max(best.get(key, 0.0), rate)
    ref = best.get(f"{REFERENCE} fp32")
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, {len(data)} canvases, batch "
          f"{args.batch}, best of {args.repeats}")  # fmt: skip
    print(f"{'detector':<34}{'images/s':>10}{'vs ' + REFERENCE:>34}")
    for key, rate in best.items():
        ratio = "" if not ref else f"{rate / ref:.1f}x"
        print(f"{key:<34}{rate:>10.1f}{ratio:>34}")
    if bf16:
        print(f"det_tiny bf16 / fp32: {best['det_tiny bf16'] / best['det_tiny fp32']:.2f}x")
    print(json.dumps({"images_per_second": best, "reference": REFERENCE,
                      "images": len(data), "cpu": cpu_model(),
                      "mean_boxes": float(np.mean(data.boxes_per_image()))}))  # type: ignore[attr-defined]  # fmt: skip


if __name__ == "__main__":
    main()
