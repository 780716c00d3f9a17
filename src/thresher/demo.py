"""``thresher demo``: the main job end to end on an embedded default data set.

The default is scikit-learn's digits (1,797 real 8x8 handwritten digits that ship inside a
dependency, so the demo needs no download and no data root). Later steps of the product add
themselves here as they land.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from thresher.lrp_gus import SearchSettings
from thresher.store import write_ids
from thresher.workflows.diagnose import diagnose_run
from thresher.workflows.embed import embed_run
from thresher.workflows.evaluate import evaluate_run
from thresher.workflows.filter import FilterSettings, run_filter
from thresher.workflows.reduce import ReduceSettings, reduce_run
from thresher.workflows.run import DataSpec, open_run
from thresher.workflows.train import train_run

DEMO_DATA = "digits"
DEMO_MODEL = "mnist_lenet"


def filter_verdict(filtered: np.ndarray, random: np.ndarray) -> str:
    """Whether the filtered subset trains worse than a random one of the same size, beyond the
    noise across seeds (paired by seed: a difference more than two standard errors below 0)."""
    diff = 100.0 * (np.asarray(filtered, np.float64) - np.asarray(random, np.float64))
    mean = float(diff.mean())
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    head = f"filtered - random: {mean:+.2f} points (paired over {diff.size} seeds, se {se:.2f})"
    if not np.isfinite(se) or mean >= -2.0 * se:
        return head + ": not worse than random beyond the noise across seeds"
    return (
        head + ": worse than random beyond the noise. These digits are clean, so what the "
        "filter removes is mostly hard but valid images; on data with real junk it finds it "
        "(planted benchmark, docs/filtering.md)"
    )


def run_demo(
    out: str | os.PathLike[str],
    *,
    device: str | None = None,
    seeds: int = 3,
    epochs: int | None = None,
    echo: Callable[[str], object] = print,
) -> dict[str, object]:
    """Train, embed and evaluate on digits; returns the figures it printed.

    ``epochs`` overrides the paper recipe's 15 epochs everywhere (a quicker demo).
    """
    t0 = time.perf_counter()
    out = Path(out)
    echo(f"[1/7] training {DEMO_MODEL} (LRP-GUS Table 2, paper recipe) on scikit-learn digits")
    trained = train_run(
        out,
        data=DataSpec(name=DEMO_DATA),
        model=DEMO_MODEL,
        device=device,
        overwrite=True,
        epochs=epochs,
    )
    assert trained.test_accuracy is not None  # a classifier (the demo's model)
    echo(
        f"      {trained.train_size} train / {trained.test_size} test images, "
        f"{trained.epochs} epochs in {trained.seconds:.1f} s: "
        f"test accuracy {100 * trained.test_accuracy:.2f}%"
    )
    run = open_run(out)

    echo("[2/7] extracting penultimate-layer embeddings (cached in the run)")
    emb = embed_run(run, device=device)
    echo(f"      {emb.values.shape[0]} x {emb.values.shape[1]} at layer {emb.layer!r}")

    echo(f"[3/7] checking a random half of the training set against the full set ({seeds} seeds)")
    train_ids = np.asarray(emb.ids)
    rng = np.random.default_rng(0)
    half = np.sort(rng.choice(train_ids, size=len(train_ids) // 2, replace=False))
    subset_file = write_ids(half, out / "subsets" / "random-50.txt")
    full = evaluate_run(
        run, subset_ids=None, seeds=seeds, epochs=epochs, device=device, name="full"
    )
    part = evaluate_run(
        run, subset_ids=half, seeds=seeds, epochs=epochs, device=device, name="random-50"
    )
    echo(f"      full set  : {full.summary()}")
    echo(f"      random 50%: {part.summary()}")

    echo("[4/7] filtering (default preset): 5% outliers + 5% copies and near-duplicates")
    settings = FilterSettings(outliers=0.05, similar=0.05)
    filtered = run_filter(run, settings, device=device)
    kept_file = write_ids(filtered.kept_ids, out / "subsets" / "filtered-90.txt")
    random_90 = np.sort(rng.choice(train_ids, size=len(filtered.kept_ids), replace=False))
    kept_eval = evaluate_run(
        run,
        subset_ids=filtered.kept_ids,
        seeds=seeds,
        epochs=epochs,
        device=device,
        name="filtered-90",
    )
    rand_eval = evaluate_run(
        run, subset_ids=random_90, seeds=seeds, epochs=epochs, device=device, name="random-90"
    )
    echo(f"      {filtered.summary()}")
    echo(f"      filtered 90%: {kept_eval.summary()}")
    echo(f"      random 90%  : {rand_eval.summary()}")
    echo(f"      {filter_verdict(kept_eval.accuracy, rand_eval.accuracy)}")

    echo("[5/7] diagnostics: archetypes, nearest adversaries, top features, density, colours")
    has_plots = importlib.util.find_spec("matplotlib") is not None
    analyses = diagnose_run(run, device=device, figures=has_plots)
    arche = analyses["archetypes"].summary()["counts"]
    totals = {a: sum(c[a] for c in arche.values()) for a in next(iter(arche.values()))}
    echo("      archetypes over all classes: " + ", ".join(f"{a} {n}" for a, n in totals.items()))
    if has_plots:
        from thresher.report.html import write_report

        report = write_report([run])
        echo(f"      one-page report: {report}")
    else:
        echo("      (no report: install thresher[report] for the figures)")

    echo("[6/7] LRP-GUS: a short relevance-guided search over class counts (p0=60, 6 iterations)")
    reduction = reduce_run(
        run,
        ReduceSettings(search=SearchSettings(p0=60, iterations=6), epochs=min(5, epochs or 5)),
        restart=True,
        device=device,
    )
    echo(f"      {reduction.summary()}")

    seconds = time.perf_counter() - t0
    echo(f"[7/7] done in {seconds:.0f} s. Outputs in {out}/:")
    for rel in (
        "manifest.json",
        "model.safetensors",
        "test_metrics.json",
        "embeddings/",
        "evaluate/",
    ):
        echo(f"      {out / rel}")
    echo(f"      {run.file('filter/' + settings.tag())}/cloud.html  (3D view of what was removed)")
    echo(f"      {out / 'reduce'}/  (search trace, cutoff, figures)")
    echo(f"      {subset_file}")
    echo(f"      {kept_file}")
    echo(f"Open it all in the browser: thresher app {out}")
    return {
        "test_accuracy": trained.test_accuracy,
        "full_mean_accuracy": full.accuracy_mean,
        "half_mean_accuracy": part.accuracy_mean,
        "filtered_kept": len(filtered.kept_ids),
        "filtered_mean_accuracy": kept_eval.accuracy_mean,
        "random_90_mean_accuracy": rand_eval.accuracy_mean,
        "archetypes": totals,
        "reduce_iterations": len(reduction.trace.records),
        "reduce_cutoff_size": len(reduction.cutoff_ids),
        "seconds": seconds,
    }
