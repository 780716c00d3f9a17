"""Compute and store a Table 1 run's subsets without training anything (issue 16).

`compare` filters each method's subset once and reuses the stored result later
(``run_filter(reuse=True)``), so a machine with CPUs but no GPU can do the filtering and a lent
GPU machine only the training: that machine then needs neither faiss nor hdbscan wheels, which
keeps what the `device` tool sends under its 64 MiB (docs/gpu.md). Selectors that need training
dynamics (el2n, grand, forgetting) are skipped: their scores come from trainings, which belong
on the GPU.

    python benchmarks/thesis_table1/subsets.py --dir benchmarks/results/thesis_table1_gpu \\
        --keep 90,50 --methods random,uniqueness,similar,outliers,half,kcenter,herding,ssp
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from thresher.filter import SELECTORS
from thresher.workflows.compare import subset_for
from thresher.workflows.run import open_run, reusing_datasets

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=HERE.parents[0] / "results" / "thesis_table1_gpu"
    )
    parser.add_argument("--keep", default="90,50", help="kept percentages, comma-separated")
    parser.add_argument(
        "--methods", default="random,uniqueness,similar,outliers,half,kcenter,herding,ssp"
    )
    args = parser.parse_args()
    run = open_run(args.dir / "run")
    methods = [m for m in args.methods.split(",") if m]
    trained = [m for m in methods if m in SELECTORS and SELECTORS.get(m).needs_signals]
    if trained:
        parser.error(f"{', '.join(trained)} need training dynamics: leave them to the GPU")
    with reusing_datasets():
        for keep in (float(k) / 100 for k in args.keep.split(",")):
            for method in methods:
                start = time.perf_counter()
                result = subset_for(run, method, keep)
                print(
                    f"{method:<11} {100 * keep:g}%: {len(result.kept_ids):,} kept "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
