"""Embedding extraction throughput against the bare forward pass, on real MNIST/Fashion-MNIST.

For each case, in one process and on the same images:

* ``bare``: ``model(x)`` in a loop under ``torch.inference_mode()`` over batches that were
  transformed and moved to the device beforehand (the ceiling: no data handling at all);
* ``extract``: ``thresher.embed.extract(...)`` from the uint8 ``ImageDataset`` (slicing,
  host-to-device copy, transform, hook copy, device-to-host copy, NaN check, ids, predictions);
* ``extract stop_early`` and ``cached (disk)``: the early-stop variant and ``cached_extract``
  streaming the rows into a run directory.

Repeats are interleaved and the best of each is reported (the machine is shared). Weights are
random: throughput does not depend on them.

Usage::

    python benchmarks/bench_embed.py --root ../shared/data [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from thresher.data import ImageDataset, load_dataset
from thresher.device import resolve_device
from thresher.embed import cached_extract, extract
from thresher.models import create_model, model_spec, transform_for
from thresher.store import Run


def load_split(root: Path | None, name: str, limit: int) -> ImageDataset:
    """The first ``limit`` training images of ``name`` ("mnist", "fashion-mnist")."""
    ds = load_dataset(name, root=root, split="train")
    return ds.take(np.arange(min(limit, len(ds))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def bench_case(
    title: str,
    model_name: str,
    ds: ImageDataset,
    *,
    layer: str,
    device: torch.device,
    batch_size: int,
    repeats: int,
    with_disk: bool,
) -> None:
    torch.manual_seed(0)
    model: nn.Module = create_model(model_name, num_classes=10).to(device).eval()
    transform = transform_for(model_name)
    batches = [
        transform(torch.from_numpy(ds.images[i : i + batch_size]).to(device))
        for i in range(0, len(ds), batch_size)
    ]

    def bare() -> None:
        with torch.inference_mode():
            for x in batches:
                model(x)

    def run_extract(stop_early: bool) -> Callable[[], object]:
        return lambda: extract(
            model,
            ds,
            layer=layer,
            transform=transform,
            batch_size=batch_size,
            device=device,
            stop_early=stop_early,
        )

    variants: dict[str, Callable[[], object]] = {
        "bare forward": bare,
        "extract": run_extract(False),
        "extract stop_early": run_extract(True),
    }
    tmp = tempfile.TemporaryDirectory(prefix="bench_embed_")
    if with_disk:
        counter = iter(range(10**6))

        def disk() -> None:  # a fresh run each time so the cache never hits
            run = Run.create(Path(tmp.name) / f"run{next(counter)}", config={})
            cached_extract(
                run,
                model,
                ds,
                layer=layer,
                transform=transform,
                batch_size=batch_size,
                device=device,
                in_memory_limit=0,  # stream the rows to disk
            )

        variants["cached (disk)"] = disk

    bare()  # warm-up (allocator, kernels)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(repeats):  # interleaved, order alternating, so drifts hit all alike
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            times[name].append(_timed(variants[name], device))
    tmp.cleanup()

    n = len(ds)
    features = extract(model, ds.take(np.arange(2)), layer=layer, transform=transform).dim
    print(
        f"\n{title}: {model_name} @ {layer} ({features} features), {n} images, batch {batch_size}"
    )
    print(f"  {'':<20} {'best images/s':>14} {'ratio of bests':>15} {'median paired ratio':>20}")
    base = times["bare forward"]
    for name, seconds in times.items():
        paired = statistics.median(b / s for b, s in zip(base, seconds, strict=True))
        print(
            f"  {name:<20} {n / min(seconds):>14.0f} {min(base) / min(seconds):>15.2f} "
            f"{paired:>20.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=None, help="data root (default: $THRESHER_DATA)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=3000, help="images per case")
    parser.add_argument("--conv-limit", type=int, default=1500, help="images for the conv tap")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    root = Path(args.root) if args.root else None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    mnist = load_split(root, "mnist", args.limit)
    fmnist = load_split(root, "fashion-mnist", args.limit)
    common = {"device": device, "batch_size": args.batch_size, "repeats": args.repeats}
    bench_case(
        "penultimate",
        "mnist_lenet",
        mnist,
        layer=model_spec("mnist_lenet").feature_layer,
        with_disk=True,
        **common,
    )
    bench_case(
        "penultimate",
        "fmnist_cnn",
        fmnist,
        layer=model_spec("fmnist_cnn").feature_layer,
        with_disk=False,
        **common,
    )
    bench_case(
        "early conv tap (flatten)",
        "mnist_lenet",
        mnist.take(np.arange(min(args.conv_limit, len(mnist)))),
        layer="conv1",
        with_disk=True,
        **common,
    )


if __name__ == "__main__":
    main()
