"""The ``evaluate`` step: retrain the run's architecture on a subset with several seeds.

Every finished (subset, seed) is stored at once under ``RUN/sweep/<name>/`` by the engine's
sweep (the same store for the local and the Ray engine), so a stopped evaluation resumes at
the first missing seed; the merged result goes to ``RUN/evaluate/<name>.json``/``.parquet``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from thresher.distributed.engine import LocalEngine, RayEngine
from thresher.distributed.sweep import EvalJob
from thresher.errors import ConfigError
from thresher.evaluate.result import EvaluationResult
from thresher.store import Run
from thresher.workflows.run import run_dataset, run_recipe


# --- evaluate ---------------------------------------------------------------------------------
def evaluate_run(
    run: Run,
    *,
    subset_ids: np.ndarray | None,
    seeds: int = 5,
    epochs: int | None = None,
    device: str | None = None,
    name: str = "subset",
    engine: str = "local",
    ray_address: str | None = None,
    precision: str | None = None,
) -> Any:
    """Retrain the run's architecture on a subset of its training split with ``seeds`` seeds.

    ``engine="ray"`` trains the seeds as parallel Ray tasks; the tables are the same.
    ``precision`` overrides the run recipe's (auto, fp32, bf16, fp16). Each finished seed is
    kept under ``RUN/sweep/<name>/``, so a stopped evaluation resumes at the first missing
    seed and a larger ``seeds`` trains only the new ones.
    """
    from thresher.distributed import get_engine

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    from thresher.workflows.evaluate_detection import is_detection_run

    if is_detection_run(run):
        raise ConfigError(
            f"{run.path} holds a detector; retrain-and-score it with `thresher compare RUN` "
            "(mAP50, mAP50-95 and the thesis's score per subset, paired with random)"
        )
    # refuse bad overrides, or a precision this machine cannot train in, first
    run_recipe(
        run, epochs=epochs, precision=precision, device=device, check_device=engine == "local"
    )
    with get_engine(engine, address=ray_address) as eng:
        done = evaluate_subsets_run(
            eng, run, {name: subset_ids}, seeds=seeds, epochs=epochs, device=device,
            precision=precision,
        )  # fmt: skip
    return done[name]


def random_like(run: Run, ids: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A seeded random subset of the run's training split with the same number of images of
    each class as ``ids`` (of images, for unlabelled data): the matched baseline a subset must
    beat."""
    from thresher.errors import DataError

    train = run_dataset(run, "train")
    wanted = np.asarray(ids).astype(str)
    pos = np.flatnonzero(np.isin(train.ids, wanted))
    if pos.size != np.unique(wanted).size:
        raise DataError(
            f"{np.unique(wanted).size - pos.size} of the subset's ids are not in the run's "
            "training split; pass ids of this run's training data"
        )
    rng = np.random.default_rng(seed)
    if train.labels is None:  # unlabelled (a detection set): the same number of images
        return np.asarray(train.ids[np.sort(rng.choice(len(train), pos.size, replace=False))])
    labels = train.labels
    counts = np.bincount(labels[pos], minlength=train.num_classes)
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=int(n), replace=False)
        for c, n in enumerate(counts)
        if n
    ]
    return np.asarray(train.ids[np.sort(np.concatenate(picked))])


SWEEP_DIR = "sweep"


def evaluate_subsets_run(
    engine: LocalEngine | RayEngine,
    run: Run,
    subsets: Mapping[str, np.ndarray | None],
    *,
    seeds: int = 5,
    epochs: int | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> dict[str, EvaluationResult]:
    """Evaluate every named subset of the run's training split (``None`` = all of it).

    Each result is stored as ``evaluate_run`` stores one (``RUN/evaluate/<name>.parquet`` and
    ``.json``). With the Ray engine all (subset, seed) pairs run as parallel tasks and each is
    kept under ``RUN/sweep/`` as it finishes.

    Returns
    -------
    dict
        name -> :class:`~thresher.evaluate.EvaluationResult`, in the order of ``subsets``.
    """
    from thresher.workflows.run import run_dataset, run_recipe, run_transform_override

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    rec = run_recipe(run, epochs=epochs, precision=precision)
    model = run.config["model"]["name"]
    jobs = [
        EvalJob(
            name=safe_name(name),
            model=model,
            recipe=rec,
            seeds=tuple(range(seeds)),
            subset_ids=None if ids is None else np.asarray(ids).astype(str),
            transform=run_transform_override(run),
        )
        for name, ids in subsets.items()
    ]
    train, test = run_dataset(run, "train"), run_dataset(run, "test")
    for job in jobs:
        _reuse_run_model(run, job, train=train, test=test, device=device)
    results = engine.sweep(jobs, train=train, test=test, device=device, store=run.file(SWEEP_DIR))
    out: dict[str, EvaluationResult] = {}
    for name, job, result in zip(subsets, jobs, results, strict=True):
        run.write_table(f"evaluate/{job.name}.parquet", result.to_table())
        run.write_json(f"evaluate/{job.name}.json", result.to_dict())
        out[name] = result
    return out


def _reuse_run_model(run: Run, job: EvalJob, *, train: Any, test: Any, device: str | None) -> None:
    """Store the run's own model as the full-set seed it already is, instead of training it
    again: ``thresher train`` fitted it on the whole training split with the run's seed,
    recipe and the architecture's transform, exactly what that seed of the job would train
    (one model on the full CIFAR-10 is an hour on a CPU). Only when every one of those
    matches, and only into an empty slot (a stored result is never replaced)."""
    from thresher.distributed.sweep import (
        data_key,
        read_seed_result,
        seed_key,
        seed_path,
        write_seed_result,
    )
    from thresher.evaluate.retrain import evaluate_trained
    from thresher.workflows.run import run_model

    trained = run.manifest.get("steps", {}).get("train")
    seed = run.config.get("seed")
    if (
        job.subset_ids is not None
        or job.transform is not None
        or run.config.get("origin", "train") != "train"  # a given model was not trained here
        or not isinstance(trained, dict)
        or trained.get("epochs") != job.recipe.epochs
        or not isinstance(seed, int)
        or seed not in job.seeds
        or run.config["model"]["name"] != job.model
        or run.config.get("recipe") != job.recipe.to_dict()
    ):
        return
    store = run.file(SWEEP_DIR)
    path, key = seed_path(store, job, seed), seed_key(job, seed, data=data_key(train, test))
    if read_seed_result(path, key) is not None:
        return
    result = evaluate_trained(
        [run_model(run)],
        train,
        test,
        model=job.model,
        recipe=job.recipe,
        seeds=[seed],
        train_seconds=[float(trained.get("seconds", float("nan")))],
        device=device,
    )
    write_seed_result(path, key, result.to_dict())


def safe_name(name: str) -> str:
    """``name`` with everything but letters, digits, ``-`` and ``_`` replaced (as
    ``evaluate_run`` names its files)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
