"""The ``dynamics`` step: EL2N, GraNd and forgetting events of a run's training images.

One full training of the run's architecture and recipe per seed
(:func:`thresher.train.dynamics.training_dynamics`); the scores are stored under
``RUN/dynamics/<key>.parquet`` with what decides them (recipe, seeds, score epoch, data), and
reused by every later ``filter``/``compare`` of the selectors ``el2n``, ``grand`` and
``forgetting``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from thresher.errors import ConfigError
from thresher.store import Run
from thresher.train.dynamics import TrainingDynamics, default_score_epoch, training_dynamics
from thresher.workflows.run import require_model, run_dataset, run_recipe, run_transform

AREA = "dynamics"
DEFAULT_SEEDS = 3


def dynamics_run(
    run: Run,
    *,
    seeds: int = DEFAULT_SEEDS,
    score_epoch: int | None = None,
    epochs: int | None = None,
    precision: str | None = None,
    device: str | None = None,
) -> TrainingDynamics:
    """The training dynamics of the run's training split, computed once and then reused.

    ``epochs`` and ``precision`` override the run recipe's (as ``evaluate``); ``seeds`` trainings
    of the full split are run the first time (a progress bar per seed and epoch).
    """
    if seeds < 1:
        raise ConfigError(f"--dynamics-seeds must be >= 1, got {seeds}")
    require_model(run, "the training-dynamics selectors (el2n, grand, forgetting)")
    recipe = run_recipe(run, epochs=epochs, precision=precision, device=device, check_device=True)
    epoch = default_score_epoch(recipe.epochs) if score_epoch is None else int(score_epoch)
    key = {
        "recipe": recipe.to_dict(),
        "model": run.config["model"]["name"],
        "seeds": seeds,
        "score_epoch": epoch,
        "inputs": run.manifest.get("inputs", {}),
    }
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    rel = f"{AREA}/{name}.parquet"
    meta = f"{AREA}/{name}.json"
    if run.exists(rel) and run.exists(meta) and run.read_json(meta).get("key") == key:
        return TrainingDynamics.from_table(run.read_table(rel))
    train = run_dataset(run, "train")
    result = training_dynamics(
        run.config["model"]["name"],
        train,
        recipe=recipe,
        seeds=seeds,
        score_epoch=epoch,
        device=device,
        transform=run_transform(run),
    )
    run.write_table(rel, result.to_table())
    run.write_json(f"{AREA}/{name}.json", {"key": key})
    run.record_entries(AREA, {name: _summary(result)})
    return result


def _summary(result: TrainingDynamics) -> dict[str, Any]:
    return {
        "seeds": list(result.seeds),
        "score_epoch": result.score_epoch,
        "epochs": result.epochs,
        "never_learned": float(result.never_learned.mean()),
        "never_forgotten": float((result.forgetting == 0).mean()),
    }
