"""Embedding extraction on the ray engine (1 and 2 replicas) against the local engine.

On the same real MNIST images and the same (random, seeded) weights:

* ``ray start``: ``ray.init`` of a local cluster (reported alone: paid once per process);
* ``local``: ``LocalEngine.extract`` (``thresher.embed.extract``, all the process's threads);
* ``local 1t``: the same with one torch thread (what one Ray replica with 1 CPU runs);
* ``ray xW``: ``RayEngine(workers=W).extract``, each replica an actor with 1 CPU (so 1 torch
  thread). Every call builds its actor pool, so each figure includes starting W actor
  processes (Python + torch import + model build); ``ray xW tiny`` embeds one batch and so
  measures that fixed per-call cost alone.

Repeats are interleaved and the best is kept (the machine may be shared: the load average is
printed). Throughput ratios are ray/local (> 1 means Ray is faster).

Usage::

    python benchmarks/bench_ray_embed.py --root ../shared/data [--n 16384] [--model fmnist_cnn]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thresher.data import load_dataset
from thresher.distributed import LocalEngine, ModelSource, RayEngine
from thresher.models import create_model, model_spec, transform_for


def _best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class OneThread:
    """An engine whose ``extract`` runs with one torch thread."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def extract(self, *args: Any, **kwargs: Any) -> Any:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.engine.extract(*args, **kwargs)
        finally:
            torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None, help="data root (or THRESHER_DATA)")
    parser.add_argument("--n", type=int, default=16384, help="training images to embed")
    parser.add_argument("--model", default="fmnist_cnn")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    ds = load_dataset("mnist", root=args.root, split="train", limit=args.n)
    tiny = ds.take(np.arange(args.batch_size))
    torch.manual_seed(0)
    net = create_model(args.model, num_classes=10, in_channels=1)
    source = ModelSource.from_module(net, name=args.model, num_classes=10, in_channels=1)
    kw = {
        "layer": model_spec(args.model).feature_layer,
        "transform": transform_for(args.model),
        "batch_size": args.batch_size,
    }
    load = os.getloadavg()
    print(
        f"{len(ds)} MNIST images, {args.model}, batch {args.batch_size}, "
        f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )

    start = time.perf_counter()
    ray1 = RayEngine(num_cpus=args.num_cpus, workers=1)
    ray1.session  # noqa: B018 - start Ray now, timed alone
    ray_start = time.perf_counter() - start
    engines: dict[str, Any] = {
        "local": LocalEngine(),
        "local 1t": OneThread(LocalEngine()),
        "ray x1": ray1,
        "ray x2": RayEngine(workers=2),
    }

    # Warm-up: first forward (oneDNN kernels), first Ray Data execution.
    engines["local"].extract(source, tiny, **kw)
    engines["ray x1"].extract(source, tiny, **kw)

    seconds: dict[str, float] = {name: float("inf") for name in engines}
    fixed: dict[str, float] = {name: float("inf") for name in engines if name.startswith("ray")}
    for _ in range(args.repeats):  # interleaved, best kept
        for name, eng in engines.items():
            seconds[name] = min(seconds[name], _best(lambda e=eng: e.extract(source, ds, **kw), 1))
            if name in fixed:
                fixed[name] = min(
                    fixed[name], _best(lambda e=eng: e.extract(source, tiny, **kw), 1)
                )
    ray1.close()

    rows = []
    local_rate = len(ds) / seconds["local"]
    print(f"ray start (ray.init, {args.num_cpus} CPUs): {ray_start:.2f} s")
    print(f"{'engine':<8} {'seconds':>8} {'img/s':>9} {'vs local':>9} {'per-call fixed s':>17}")
    for name in engines:
        rate = len(ds) / seconds[name]
        row = {
            "engine": name,
            "seconds": seconds[name],
            "images_per_second": rate,
            "ratio_vs_local": rate / local_rate,
            "fixed_seconds": fixed.get(name),
        }
        rows.append(row)
        fx = "" if name not in fixed else f"{fixed[name]:.2f}"
        print(f"{name:<8} {seconds[name]:>8.2f} {rate:>9.0f} {rate / local_rate:>8.2f}x {fx:>17}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "n": len(ds),
                    "model": args.model,
                    "batch_size": args.batch_size,
                    "cores": os.cpu_count(),
                    "load_average": load,
                    "ray_start_seconds": ray_start,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
