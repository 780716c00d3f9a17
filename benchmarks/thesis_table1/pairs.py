"""Train a Table 1 run's method cells for the next seeds before its full-set models (issue 16).

`run.sh` goes seed by seed through `compare`, which trains each seed's full-set model first.
On a 2-core CPU a model takes 45-60 minutes, so a session gets two or three models: spent on
the full set they add no paired comparison. This script trains only the named cells (default
random and similar at 90%, the pair Table 1's goal is about) into the same per-seed files
`compare` reuses (`RUN/sweep/<method>-keep<k>/seed-<s>.json`, same ids, epochs and precision
as `compare`'s defaults), so a later `run.sh` picks them up and trains only what is missing.

    python benchmarks/thesis_table1/pairs.py --seeds 3     # seeds 0-2 of random and similar

`random` keeps 50% (or 90%) of the data at random, so its class counts are the data's (about
equal); a selector that is not class-aware (kcenter, uniqueness) keeps more of some classes.
`--matched` also trains, for each method, a random subset with that method's class counts
(`random_as_<method>-keep<k>`, `random_like`, subset seed 0): the method minus it is what its
choice of images within each class adds, beyond the class balance it chose.
`--per-class` gives each method a class-aware budget instead (the same share of every class,
`subset_for(per_class=True)`), in cells named `<method>_perclass-keep<k>`; with `random` it is
a class-stratified random subset.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from thresher.evaluate.paired import paired_difference
from thresher.filter import SELECTORS
from thresher.store import Run
from thresher.workflows.compare import subset_for
from thresher.workflows.evaluate import evaluate_run, random_like
from thresher.workflows.filter import percent_tag
from thresher.workflows.run import open_run, reusing_datasets

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=HERE.parents[0] / "results" / "thesis_table1")
    parser.add_argument("--keep", default="90", help="kept percentages, comma-separated")
    parser.add_argument("--methods", default="random,similar")
    parser.add_argument("--seeds", type=int, default=3, help="train seeds 0..N-1 (cached)")
    parser.add_argument(
        "--matched",
        action="store_true",
        help="also train a random subset with each method's class counts (random_as_<method>)",
    )
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="class-aware budgets: keep the same share of every class (<method>_perclass cells)",
    )
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    run = open_run(args.dir / "run")
    methods = [m for m in args.methods.split(",") if m]
    suffix = "_perclass" if args.per_class else ""
    keeps = [float(k) / 100 for k in args.keep.split(",") if k]
    trained = [m for m in methods if m in SELECTORS and SELECTORS.get(m).needs_signals]
    if trained:
        parser.error(f"{', '.join(trained)} need training dynamics: use run.sh")
    accuracies: dict[str, np.ndarray] = {}
    with reusing_datasets():
        # seed by seed, so that a job stopped early leaves whole pairs, not one method's seeds
        for seeds in range(1, args.seeds + 1):
            for keep in keeps:
                for method, ids in cells(
                    run, methods, keep, matched=args.matched, per_class=args.per_class
                ):
                    start = time.perf_counter()
                    name = f"{method}-keep{percent_tag(keep)}"
                    result = evaluate_run(run, subset_ids=ids, seeds=seeds, name=name)
                    accuracies[name] = result.accuracy
                    print(
                        f"{name} seeds 0-{seeds - 1}: {result.accuracy_mean:.4f} "
                        f"mean ({time.perf_counter() - start:.0f} s)",
                        flush=True,
                    )
    # each method against random at the same kept share (and, with --matched, against random
    # with its own class counts), paired by seed (compare's statistic)
    for keep in keeps:
        tag = percent_tag(keep)
        for method in (m for m in methods if m != "random"):
            refs = ([f"random{suffix}"] if "random" in methods else []) + (
                [f"random_as_{method}{suffix}"] if args.matched else []
            )
            for ref in refs:
                diff = paired_difference(
                    accuracies[f"{method}{suffix}-keep{tag}"], accuracies[f"{ref}-keep{tag}"]
                )
                print(f"{method} - {ref} at {tag}%: {diff.summary()}", flush=True)


def cells(
    run: Run, methods: list[str], keep: float, *, matched: bool, per_class: bool
) -> list[tuple[str, np.ndarray]]:
    """(cell name, kept ids) of each method at ``keep``; with ``matched``, each non-random
    method followed by the random subset with its class counts (``random_as_<method>``);
    with ``per_class``, class-aware budgets (names end in ``_perclass``)."""
    suffix = "_perclass" if per_class else ""
    out = []
    for method in methods:
        ids = subset_for(run, method, keep, per_class=per_class or None).kept_ids
        out.append((f"{method}{suffix}", ids))
        if matched and method != "random":
            out.append((f"random_as_{method}{suffix}", random_like(run, ids, seed=0)))
    return out


if __name__ == "__main__":
    main()
