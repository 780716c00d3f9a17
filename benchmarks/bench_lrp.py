"""LRP-epsilon throughput against a plain input-gradient pass, on real MNIST / Fashion-MNIST.

In one process, on the same images and batches (already transformed, on the device):

* ``gradient``: ``torch.autograd.grad(logits, x, one_hot)`` per batch (the ceiling: LRP-epsilon
  is one modified backward pass);
* ``lrp``: ``thresher.explain.class_relevance`` from the stored uint8 images (transform,
  zennit hooks, the epsilon rule, eq. 1 normalisation and per-class accumulation).

Ratio = LRP throughput / gradient throughput (goal >= 0.5). Repeats are interleaved and the best
of each is kept (the machine is shared). Weights are random: throughput does not depend on them.

Usage::

    python benchmarks/bench_lrp.py --root ../shared/data [--model fmnist_cnn] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from thresher.data import load_dataset
from thresher.device import resolve_device
from thresher.explain import LRPSettings, class_relevance
from thresher.models import create_model, transform_for


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--model", default="mnist_lenet")
    ap.add_argument("--data", default=None, help="default: mnist for mnist_lenet, else fashion")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--composite", default="epsilon", help="e.g. epsilon_zennit (zennit's rule)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    data = args.data or ("mnist" if args.model == "mnist_lenet" else "fashion-mnist")
    ds = load_dataset(data, root=args.root, split="train")
    ds = ds.take(np.arange(min(args.n, len(ds))))
    torch.manual_seed(0)
    net = create_model(args.model, num_classes=ds.num_classes, in_channels=ds.channels)
    net.to(dev).eval()
    tf = transform_for(args.model)
    x_u8 = torch.from_numpy(ds.images).to(dev)
    y = torch.from_numpy(ds.labels).to(dev)
    batches = [
        (tf(x_u8[a : a + args.batch]), y[a : a + args.batch]) for a in range(0, len(ds), args.batch)
    ]
    for p in net.parameters():
        p.requires_grad_(False)

    def gradient() -> None:
        for xb, yb in batches:
            xg = xb.detach().requires_grad_(True)
            logits = net(xg)
            one_hot = torch.zeros_like(logits).scatter_(1, yb[:, None], 1.0)
            torch.autograd.grad(logits, xg, grad_outputs=one_hot * logits.detach())
        _sync(dev)

    settings = LRPSettings(batch_size=args.batch, composite=args.composite)

    def lrp() -> None:
        class_relevance(
            net, x_u8, y, num_classes=ds.num_classes, transform=tf, settings=settings, device=dev
        )
        _sync(dev)

    best = {"gradient": float("inf"), "lrp": float("inf")}
    gradient()
    lrp()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("gradient", gradient), ("lrp", lrp)):
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    n = len(ds)
    grad_ips, lrp_ips = n / best["gradient"], n / best["lrp"]
    print(
        f"{args.model} on {data}, {n} images, batch {args.batch}, {dev}, "
        f"threads {torch.get_num_threads()}"
    )
    print(f"gradient pass: {grad_ips:10.0f} img/s ({best['gradient']:.3f} s)")
    print(f"LRP ({args.composite}): {lrp_ips:10.0f} img/s ({best['lrp']:.3f} s)")
    print(f"ratio LRP / gradient: {lrp_ips / grad_ips:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
