"""Retraining a detection run's detector on a subset: mAP50, mAP50-95 and the thesis's score.

The detection counterpart of :func:`thresher.workflows.evaluate.evaluate_run`: ``seeds``
detectors trained on the subset (the run's architecture and recipe), each scored on the test
split. Each finished seed is stored under ``RUN/sweep/<name>/`` (keyed like the classification
sweep: model, recipe, seed, data, subset), so a stopped comparison resumes at the first missing
seed.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from thresher.distributed.sweep import (
    EvalJob,
    data_key,
    read_seed_result,
    seed_key,
    seed_path,
    write_seed_result,
)
from thresher.errors import ConfigError
from thresher.store import Run

METRICS = ("score", "map50", "map50_95")


def is_detection_run(run: Run) -> bool:
    """Whether the run's model is a detector (``thresher train ... --model det_tiny``)."""
    from thresher.models import MODELS

    # an embeddings run has no model; user factories (module:callable) are classifiers
    name = (run.config.get("model") or {}).get("name")
    return isinstance(name, str) and name in MODELS and MODELS.get(name).task == "detection"


def require_classifier(run: Run, what: str) -> None:
    """Refuse, naming ``what``, when the run holds a detector (a step made for classifiers:
    LRP, the imbalance diagnostics, label issues, the LRP-GUS search)."""
    if is_detection_run(run):
        from thresher.errors import RunError

        raise RunError(
            f"{what} is made for classifiers, but {run.path} holds a detector; on a detection "
            "run use embed, filter, compare, export and the app (docs/detection.md)"
        )


def evaluate_detection_run(
    run: Run,
    *,
    subset_ids: np.ndarray | None,
    seeds: int = 3,
    epochs: int | None = None,
    device: str | None = None,
    name: str = "subset",
    precision: str | None = None,
) -> dict[str, Any]:
    """Train ``seeds`` detectors on ``subset_ids`` (``None`` = the whole training split).

    Returns
    -------
    dict with ``subset_size``, ``train_size``, ``test_size``, ``seeds``, per-seed lists
    ``score``, ``map50``, ``map50_95``, ``train_seconds``, and ``<metric>_mean`` /
    ``<metric>_std`` (sample std; 0 for one seed) of each metric.
    """
    from thresher.train.detection import detection_metrics, fit_detector
    from thresher.workflows.evaluate import safe_name
    from thresher.workflows.run import run_dataset, run_recipe

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    rec = run_recipe(run, epochs=epochs, precision=precision)
    train, test = run_dataset(run, "train"), run_dataset(run, "test")
    ids = None if subset_ids is None else np.asarray(subset_ids).astype(str)
    rows = np.arange(len(train)) if ids is None else np.sort(train.indices_of(ids))
    if rows.size == 0:
        raise ConfigError(f"subset {name!r} is empty; a detector needs images to train on")
    job = EvalJob(
        name=safe_name(name),
        model=str(run.config["model"]["name"]),
        recipe=rec,
        seeds=tuple(range(seeds)),
        subset_ids=None if ids is None else train.ids[rows],
    )
    data = data_key(train, test)
    store = run.file("sweep")
    per_seed: list[dict[str, float]] = []
    for seed in job.seeds:
        key = seed_key(job, seed, data=data)
        path = seed_path(store, job, seed)
        stored = read_seed_result(path, key)
        if stored is None:
            start = time.perf_counter()
            fitted = fit_detector(job.model, train, recipe=rec, seed=seed, device=device,
                                  indices=rows)  # fmt: skip
            seconds = time.perf_counter() - start
            m = detection_metrics(fitted.model, test, device=device, precision=fitted.precision)
            stored = {"score": m.score, "map50": m.map50, "map50_95": m.map50_95,
                      "train_seconds": seconds}  # fmt: skip
            write_seed_result(path, key, stored)
        per_seed.append(stored)
    out: dict[str, Any] = {
        "task": "detection",
        "model": job.model,
        "recipe": rec.name,
        "seeds": list(job.seeds),
        "subset_size": int(rows.size),
        "train_size": len(train),
        "test_size": len(test),
        "train_seconds": [float(s["train_seconds"]) for s in per_seed],
    }
    for metric in METRICS:
        values = [float(s[metric]) for s in per_seed]
        out[metric] = values
        out[f"{metric}_mean"] = statistics.fmean(values)
        out[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    run.write_json(f"evaluate/{job.name}.json", out)
    return out
