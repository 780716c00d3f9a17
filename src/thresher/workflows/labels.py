"""The ``labels`` step: label issues of a run's training split by confident learning."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from thresher.errors import ConfigError, RunError
from thresher.filter.labels import LABEL_METHODS, LabelIssues, cross_val_pred_probs, label_issues
from thresher.store import Run
from thresher.workflows.embed import embed_run
from thresher.workflows.run import require_model, run_dataset, run_recipe, run_transform


def labels_run(
    run: Run,
    *,
    folds: int = 5,
    epochs: int | None = None,
    method: str = "ensemble",
    layer: str | None = None,
    seed: int = 0,
    device: str | None = None,
    precision: str | None = None,
) -> LabelIssues:
    """Find the run's likely mislabelled training images (see :mod:`thresher.filter.labels`).

    ``precision`` overrides the run recipe's for the cross-validation models."""

    from thresher.workflows.evaluate_detection import require_classifier

    require_classifier(run, "thresher labels")
    if method not in LABEL_METHODS:
        raise ConfigError(
            f"unknown label-issue method {method!r} (valid: {', '.join(LABEL_METHODS)})"
        )
    if folds < 2:
        raise ConfigError(
            f"--folds must be >= 2 (each image is scored by a model that never saw it), got {folds}"
        )
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {epochs}")
    require_model(run, "thresher labels")
    data = run_dataset(run, "train")
    if data.labels is None:
        raise ConfigError(
            f"{data.name} has no labels, so no label can be wrong; filter outliers and "
            "near-duplicates only"
        )
    if folds > int(np.bincount(data.labels).max()):
        raise ConfigError(f"--folds {folds} is more than the largest class has images")
    rec = run_recipe(run, epochs=epochs, precision=precision, device=device, check_device=True)
    key: dict[str, Any] = {"folds": folds, "epochs": rec.epochs, "seed": seed, "n": len(data)}
    if precision is not None:
        key["precision"] = rec.precision
    probs = None
    if run.exists("labels/pred_probs.json") and run.read_json("labels/pred_probs.json") == key:
        probs = run.read_array("labels/pred_probs.npy")
    if probs is None:
        probs = cross_val_pred_probs(
            run.config["model"]["name"],
            data,
            folds=folds,
            recipe=rec,
            seed=seed,
            device=device,
            transform=run_transform(run),
        )
        run.write_array("labels/pred_probs.npy", probs)
        run.write_json("labels/pred_probs.json", key)
    emb = embed_run(run, layer=layer, device=device) if method == "ensemble" else None
    issues = label_issues(
        probs,
        data.labels,
        ids=data.ids,
        embeddings=None if emb is None else np.asarray(emb.values),
        method=method,
        seed=seed,
    )
    params = {**issues.params, **key, "layer": None if emb is None else emb.layer}
    run.write_table("labels/result.parquet", issues.to_table())
    run.write_json("labels/params.json", params)
    run.record_step("labels", {**params, "summary": issues.summary()})
    return dataclasses.replace(issues, params=params)


def load_label_issues(run: Run) -> LabelIssues:
    """The run's stored label issues (``thresher labels`` must have run)."""
    if not run.exists("labels/result.parquet"):
        raise RunError(
            f"{run.path} has no label issues yet; run `thresher labels {run.path}` first"
        )
    return LabelIssues.from_table(
        run.read_table("labels/result.parquet"), params=run.read_json("labels/params.json")
    )


__all__ = ["labels_run", "load_label_issues"]
