"""Training throughput at ``precision=auto`` (bf16 + channels-last here) against fp32 NCHW.

For each model, Thresher's own trainer (``fit``) trains the same images with the same recipe
and seed in fp32 and in ``auto``, interleaved in this one process, best of ``--repeats`` (the
machine is shared; the best run is the least disturbed). Also measured in the same run: a bf16
and an fp32 matrix multiply (the machine's practical peak) and each model's FLOPs per trained
image (``torch.utils.flop_counter``, forward + backward), so each line says how far the trainer
is from the limit.

    python benchmarks/bench_precision.py                 # the five models, 2 threads
    python benchmarks/bench_precision.py --models mnist_lenet --images 8000

The paper nets train on real MNIST images (``$THRESHER_DATA``); the CIFAR nets on random
pixels of CIFAR's shape (speed does not depend on the content).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from thresher.data import load_dataset
from thresher.data.types import ImageDataset
from thresher.models import create_model, model_spec, transform_for
from thresher.precision import resolve_precision
from thresher.train import fit, get_recipe

MODELS = ("mnist_lenet", "fmnist_cnn", "cifar_small", "resnet32", "cifar_fast")


def images_for(model: str, n: int, root: str) -> ImageDataset:
    if model in ("mnist_lenet", "fmnist_cnn"):
        name = "mnist" if model == "mnist_lenet" else "fashion-mnist"
        return load_dataset(name, root=root, split="train", limit=n)
    rng = np.random.default_rng(0)
    return ImageDataset(
        images=rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8),
        labels=rng.integers(0, 10, size=n),
        ids=np.array([f"r/{i}" for i in range(n)]),
        classes=tuple(str(c) for c in range(10)),
        name="random-cifar-shape",
    )


def gemm_flops(dtype: torch.dtype, device: torch.device, repeats: int = 5) -> float:
    size = 8192 if device.type == "cuda" else 2048
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best


def flops_per_image(model: str, data: ImageDataset, batch: int) -> float:
    net = create_model(model, num_classes=10, in_channels=data.channels)
    x = transform_for(model)(torch.from_numpy(data.images[:batch]))
    y = torch.from_numpy(np.asarray(data.labels[:batch]))
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(net(x), y).backward()
    return counter.get_total_flops() / batch


def throughput(
    model: str, data: ImageDataset, precision: str, epochs: int, device: torch.device
) -> float:
    rec = get_recipe(model_spec(model).recipe).replace(epochs=epochs, augment=())
    res = fit(model, data, recipe=rec, seed=0, precision=precision, device=device)
    return len(data) * epochs / res.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--images", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--root", default=os.environ.get("THRESHER_DATA", "../shared/data"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    auto = resolve_precision("auto", device)
    half = torch.bfloat16 if auto == "bf16" else torch.float16
    peak_bf16, peak_fp32 = gemm_flops(half, device), gemm_flops(torch.float32, device)
    print(f"{device.type}, threads {args.threads}; auto resolves to {auto}")
    print(f"matmul: {auto} {peak_bf16 / 1e9:.0f} GFLOP/s, fp32 {peak_fp32 / 1e9:.0f} GFLOP/s")
    print(f"{'model':12s} {'fp32 img/s':>11s} {'auto img/s':>11s} {'ratio':>6s} "
          f"{'GFLOP/img':>10s} {'fp32 %peak':>10s} {'auto %half peak':>15s}")  # fmt: skip
    for model in args.models.split(","):
        data = images_for(model, args.images, args.root)
        rec = get_recipe(model_spec(model).recipe)
        fpi = flops_per_image(model, data, min(rec.batch_size, len(data)))
        best = {"fp32": 0.0, auto: 0.0}
        for _ in range(args.repeats):  # interleaved: both see the same machine state
            for p in best:
                best[p] = max(best[p], throughput(model, data, p, args.epochs, device))
        r32, rau = best["fp32"], best[auto]
        print(
            f"{model:12s} {r32:11.0f} {rau:11.0f} {rau / r32:5.2f}x {fpi / 1e9:10.4f} "
            f"{100 * r32 * fpi / peak_fp32:9.1f}% {100 * rau * fpi / peak_bf16:14.1f}%",
            flush=True,
        )


if __name__ == "__main__":
    main()
