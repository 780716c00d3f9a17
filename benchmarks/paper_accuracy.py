"""Paper-recipe accuracy of the LRP-GUS networks on the real MNIST / Fashion-MNIST.

Trains ``mnist_lenet`` (Table 2) on MNIST and ``fmnist_cnn`` (Table 3) on Fashion-MNIST with the
paper's recipe (Adam defaults, batch 64 / 128, 15 epochs) through the same ``train_run`` the CLI
uses, and prints test accuracy next to the paper's (99.24% / 92.46%) with wall time.

    python benchmarks/paper_accuracy.py --root ../shared/data [--only mnist] [--epochs 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from thresher.workflows.run import DataSpec
from thresher.workflows.train import train_run

PAPER = {"mnist": ("mnist_lenet", 0.9924), "fashion-mnist": ("fmnist_cnn", 0.9246)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.environ.get("THRESHER_DATA"))
    parser.add_argument("--only", choices=sorted(PAPER), default=None)
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's 15")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print(f"{'dataset':<14} {'model':<12} {'epochs':>6} {'test acc':>9} {'paper':>7} {'wall s':>7}")
    names = [args.only] if args.only else list(PAPER)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            model, paper = PAPER[name]
            out = os.path.join(args.out or tmp, f"{name}-{model}")
            t0 = time.perf_counter()
            res = train_run(
                out,
                data=DataSpec(name=name, root=args.root),
                model=model,
                epochs=args.epochs,
                seed=args.seed,
                device=args.device,
                overwrite=True,
            )
            wall = time.perf_counter() - t0
            print(
                f"{name:<14} {model:<12} {res.epochs:>6} {100 * res.test_accuracy:>8.2f}% "
                f"{100 * paper:>6.2f}% {wall:>7.0f}   ({res.images_per_second:.0f} img/s train, "
                f"{res.device})",
                flush=True,
            )


if __name__ == "__main__":
    main()
