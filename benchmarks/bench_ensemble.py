"""Throughput of many models trained at once (stacked) against one after another.

Also compares the single-model trainer with a straightforward ``DataLoader(TensorDataset)``
loop. All runs use the same images, recipe and epochs, in this one process; every figure is
the best of ``--repeats`` runs (this machine is shared, the best run is the least disturbed).

    python benchmarks/bench_ensemble.py                        # 8 x mnist_lenet, CPU
    python benchmarks/bench_ensemble.py --model fmnist_cnn --n 20 --device cuda
    python benchmarks/bench_ensemble.py --synthetic            # no data needed
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from thresher.data.types import ImageDataset
from thresher.device import resolve_device
from thresher.models import create_model, model_spec, transform_for
from thresher.train import Recipe, fit, get_recipe, train_many

DATA_FOLDER = {"mnist_lenet": "mnist", "fmnist_cnn": "fashion-mnist"}


def load_images(args: argparse.Namespace) -> ImageDataset:
    if args.synthetic:
        rng = np.random.default_rng(0)
        shape = (
            (args.images, 3, 32, 32)
            if args.model.startswith("resnet")
            else (args.images, 1, 28, 28)
        )
        return ImageDataset(
            images=rng.integers(0, 256, shape, dtype=np.uint8),
            labels=rng.integers(0, 10, args.images),
            ids=np.arange(args.images).astype(str),
            name="synthetic",
        )
    from thresher.data.idx import load_idx

    root = Path(
        args.root or os.environ.get("THRESHER_DATA", Path(__file__).parents[2] / "shared" / "data")
    )
    folder = DATA_FOLDER.get(args.model)
    if folder is None:
        raise SystemExit(f"no real data set wired for {args.model}; pass --synthetic")
    full = load_idx(root / folder, split="train")
    return full.take(np.arange(min(args.images, len(full))))


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def dataloader_loop(
    model_name: str, ds: ImageDataset, recipe: Recipe, device: torch.device
) -> None:
    """What one would write first: float tensors, DataLoader with shuffling, .to(device)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = create_model(model_name, num_classes=ds.num_classes, in_channels=ds.channels).to(device)
    tf = transform_for(model_name)
    x = tf(torch.from_numpy(ds.images))  # normalised once, up front
    loader = DataLoader(
        TensorDataset(x, torch.from_numpy(ds.labels)), batch_size=recipe.batch_size, shuffle=True
    )
    opt = recipe.make_optimizer(model.parameters())
    model.train()
    for _ in range(recipe.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="models trained (default 8)")
    parser.add_argument("--model", default="mnist_lenet")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--root", default=None, help="data root (default $THRESHER_DATA)")
    parser.add_argument("--synthetic", action="store_true", help="random images instead of data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--precision", default="fp32", help="training precision of every arm (fp32, auto, bf16)"
    )
    args = parser.parse_args()

    os.environ.setdefault("THRESHER_PROGRESS", "0")
    device = resolve_device(args.device)
    ds = load_images(args)
    recipe = get_recipe(model_spec(args.model).recipe).replace(
        epochs=args.epochs, precision=args.precision
    )
    if args.batch_size:
        recipe = recipe.replace(batch_size=args.batch_size)
    seeds = list(range(args.n))
    work = len(ds) * args.epochs
    print(
        f"{args.model}: {len(ds)} {'synthetic' if args.synthetic else ds.name} images, "
        f"{args.epochs} epoch(s), batch {recipe.batch_size}, device {device}, "
        f"torch threads {torch.get_num_threads()}, precision {args.precision} "
        "(the plain DataLoader loop stays fp32)"
    )
    # Warm-up (allocator, kernels, lazy imports) outside every timing.
    fit(args.model, ds.take(np.arange(min(256, len(ds)))), recipe=recipe, device=device)

    stacked = best_seconds(
        lambda: train_many(args.model, ds, recipe=recipe, seeds=seeds, device=device, stack=True),
        args.repeats,
    )
    one_by_one = best_seconds(
        lambda: train_many(args.model, ds, recipe=recipe, seeds=seeds, device=device, stack=False),
        args.repeats,
    )
    print(
        f"{args.n} models stacked      : {args.n * work / stacked:9.0f} images/s ({stacked:.2f} s)"
    )
    print(
        f"{args.n} models one by one   : {args.n * work / one_by_one:9.0f} images/s ({one_by_one:.2f} s)"
    )
    print(f"stacked / one-by-one ratio : {one_by_one / stacked:9.2f}x")

    trainer = best_seconds(lambda: fit(args.model, ds, recipe=recipe, device=device), args.repeats)
    loader = best_seconds(lambda: dataloader_loop(args.model, ds, recipe, device), args.repeats)
    print(f"1 model, thresher trainer  : {work / trainer:9.0f} images/s ({trainer:.2f} s)")
    print(f"1 model, DataLoader loop   : {work / loader:9.0f} images/s ({loader:.2f} s)")
    print(f"trainer / DataLoader ratio : {loader / trainer:9.2f}x")


if __name__ == "__main__":
    main()
