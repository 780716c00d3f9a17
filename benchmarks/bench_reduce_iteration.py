"""One LRP-GUS iteration (sample, train, evaluate, relevance, score): the fast path against a
straightforward implementation, in the same process, on real MNIST.

* ``fast``: :class:`thresher.lrp_gus.scorer.TrainScorer` (the foundation's trainer: images on
  the device, index-slice batches, batched transform; evaluation images resident on the
  device; relevance batched through zennit and streamed into per-class sums);
* ``straightforward``: a ``torch.utils.data.DataLoader`` over a ``TensorDataset``, per-batch
  Python transform, the same model/optimizer/epochs, evaluation through a DataLoader, and
  relevance image by image (one zennit context, one forward/backward per image).

Both compute the same quantities (accuracy, per-class F1, f of eq. 2). Repeats interleave and
the best of each is kept (the machine is shared).

Usage::

    python benchmarks/bench_reduce_iteration.py --root ../shared/data --p0 100 --epochs 1
    python benchmarks/bench_reduce_iteration.py --root ../shared/data --p0 2000 --epochs 15 \
        --only-fast [--precision auto]   # the paper's MNIST iteration
    python benchmarks/bench_reduce_iteration.py --root ../shared/data --dataset fashion-mnist \
        --model fmnist_cnn --recipe paper-fmnist --p0 400 --epochs 15 --only-fast
        # a tenth of the paper's Fashion-MNIST first iteration (time scales with |I|)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from thresher.data import ImageDataset, load_dataset
from thresher.data.subset import stratified_split
from thresher.device import resolve_device
from thresher.evaluate import class_metrics
from thresher.explain import make_composite, negative_intensity
from thresher.lrp_gus.scorer import TrainScorer
from thresher.lrp_gus.search import SearchSettings, class_orders, subset_positions
from thresher.models import create_model, transform_for
from thresher.train import get_recipe


def straightforward_iteration(
    train: ImageDataset,
    val: ImageDataset,
    positions: np.ndarray,
    *,
    model: str,
    epochs: int,
    seed: int,
    recipe_name: str = "paper-mnist",
) -> tuple[float, np.ndarray]:
    recipe = get_recipe(recipe_name)
    tf = transform_for(model)
    torch.manual_seed(seed)
    net = create_model(model, num_classes=train.num_classes, in_channels=train.channels)
    x = torch.from_numpy(train.images[positions])
    y = torch.from_numpy(train.labels[positions])
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    net.train()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(net(tf(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    preds = []
    with torch.no_grad():
        for (xb,) in DataLoader(TensorDataset(torch.from_numpy(val.images)), batch_size=256):
            preds.append(net(tf(xb)).argmax(1))
    acc = class_metrics(val.labels, torch.cat(preds).numpy(), num_classes=10).accuracy
    sums = np.zeros((10, 1, 28, 28))
    counts = np.zeros(10)
    composite = make_composite("epsilon", model=net, epsilon=1e-4)
    with composite.context(net) as modified:
        for i in range(len(x)):
            xi = tf(x[i : i + 1]).requires_grad_(True)
            out = modified(xi)
            seed_grad = torch.zeros_like(out)
            seed_grad[0, y[i]] = out[0, y[i]].detach()
            (rel,) = torch.autograd.grad(out, xi, grad_outputs=seed_grad)
            r = rel[0].numpy().astype(np.float64)
            scale = np.abs(r).max()
            sums[int(y[i])] += r / scale if scale > 0 else r
            counts[int(y[i])] += 1
    f = negative_intensity(sums / counts[:, None, None, None])
    return acc, f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist")
    ap.add_argument("--model", default="mnist_lenet")
    ap.add_argument("--recipe", default="paper-mnist", help="paper-mnist or paper-fmnist")
    ap.add_argument("--p0", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--only-fast", action="store_true")
    ap.add_argument(
        "--precision", default="fp32", help="training precision of the fast path (fp32, auto)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    full = load_dataset(args.dataset, root=args.root, split="train")
    pool, val_idx = stratified_split(full.labels, test_fraction=0.1, seed=0)
    train, val = full.take(pool), full.take(val_idx)
    settings = SearchSettings(p0=args.p0)
    positions = subset_positions(
        train.labels,
        settings.initial_counts(10),
        settings=settings,
        iteration=0,
        orders=class_orders(train.labels, 10, seed=0),
    )
    recipe = get_recipe(args.recipe).replace(epochs=args.epochs, precision=args.precision)
    scorer = TrainScorer(train, val, model=args.model, recipe=recipe, device=dev)
    best = {"fast": float("inf"), "straightforward": float("inf")}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        score = scorer(positions, seed=1, relevance=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        best["fast"] = min(best["fast"], time.perf_counter() - t0)
        if not args.only_fast:
            t0 = time.perf_counter()
            acc, f = straightforward_iteration(
                train,
                val,
                positions,
                model=args.model,
                epochs=args.epochs,
                seed=1,
                recipe_name=args.recipe,
            )
            best["straightforward"] = min(best["straightforward"], time.perf_counter() - t0)
    print(
        f"{args.dataset}, {args.model}, {args.recipe}, |I| = {len(positions)} (p0 {args.p0}), "
        f"{args.epochs} epoch(s), "
        f"validation {len(val)}, {dev}, threads {torch.get_num_threads()}, "
        f"precision {args.precision}"
    )
    print(f"fast path      : {best['fast']:8.2f} s  (accuracy {score.accuracy:.4f})")
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in scorer.last_seconds.items())
    print(f"  last fast call: {parts}")
    if not args.only_fast:
        print(f"straightforward: {best['straightforward']:8.2f} s  (accuracy {acc:.4f})")
        print(f"speed-up: {best['straightforward'] / best['fast']:.2f}x")
        assert score.f is not None
        print(f"f (fast)           : {np.round(score.f, 1).tolist()}")
        print(f"f (straightforward): {np.round(f, 1).tolist()}")


if __name__ == "__main__":
    main()
