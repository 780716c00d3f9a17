"""Evaluation sweeps (seeds x subsets x methods) split into one job per subset and seed.

A sweep is a list of :class:`EvalJob` (a named subset evaluated with several seeds). The Ray
engine runs one task per (job, seed): each calls :func:`thresher.evaluate.evaluate` with that
single seed, which on the CPU trains exactly the model the local engine trains for that seed
(``train_many`` trains seeds one after another, each from its own seed). The per-seed results
are merged back into one :class:`~thresher.evaluate.EvaluationResult` per job.

Restarts: each finished (job, seed) is written at once, atomically, to
``STORE/<job>/seed-<s>.json`` with a key over everything that determines it (model, recipe,
data, subset); a rerun reads matching files and runs only what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError
from thresher.evaluate.result import EvaluationResult
from thresher.models.preprocess import InputTransform
from thresher.store import atomic_write_text, dumps
from thresher.train.recipes import Recipe

_RESULT_VERSION = 1


@dataclass(frozen=True, eq=False)
class EvalJob:
    """One cell of a sweep: retrain ``model`` on ``subset_ids`` with each of ``seeds``.

    Attributes:
        name: unique within the sweep; letters, digits, ``-`` and ``_`` (a file name).
        model: registry name of the architecture.
        recipe: the training recipe.
        seeds: ``(S,)`` seeds, in result row order.
        subset_ids: ids of the training images; ``None`` = the whole training set.
        transform: the run's input transform when it is not the architecture's own (a run made
            by ``thresher init`` with ``--size``/``--mean``/``--std``); ``None`` = the model's.
    """

    name: str
    model: str
    recipe: Recipe
    seeds: tuple[int, ...]
    subset_ids: np.ndarray | None = field(default=None, repr=False)
    transform: InputTransform | None = None

    def __post_init__(self) -> None:
        if not self.name or any(not (c.isalnum() or c in "-_") for c in self.name):
            raise ConfigError(
                f"sweep job name {self.name!r} must be letters, digits, '-' or '_'; it names "
                "the job's result files"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"job {self.name!r} needs distinct seeds, got {list(self.seeds)}")


def check_jobs(jobs: Sequence[EvalJob]) -> None:
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"two sweep jobs are named {dup!r}; give every job its own name")


def data_key(train: ImageDataset, test: ImageDataset) -> str:
    """The fingerprints of both data sets (computed once per sweep)."""
    return f"{train.fingerprint()}:{test.fingerprint()}"


def seed_key(job: EvalJob, seed: int, *, data: str) -> str:
    """sha256 over what decides the (job, seed) result: model, recipe, seed, data, subset."""
    h = hashlib.sha256()
    ids = "full" if job.subset_ids is None else "\x00".join(map(str, job.subset_ids))
    parts = [job.model, json.dumps(job.recipe.to_dict(), sort_keys=True)]
    if job.transform is not None:  # only when set, so keys stored before it still match
        parts.append(repr(job.transform))
    for part in (
        *parts,
        str(int(seed)),
        data,
        ids,
    ):
        h.update(part.encode() + b"\x01")
    return h.hexdigest()


def seed_path(store: Path, job: EvalJob, seed: int) -> Path:
    return store / job.name / f"seed-{int(seed)}.json"


def read_seed_result(path: Path, key: str) -> dict[str, Any] | None:
    """The stored result at ``path`` when complete and made for ``key``; else ``None``."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.get("version") != _RESULT_VERSION or stored.get("key") != key:
        return None
    result = stored.get("result")
    return result if isinstance(result, dict) else None


def write_seed_result(path: Path, key: str, result: dict[str, Any]) -> None:
    """Write one (job, seed) result atomically (a crash leaves the old file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dumps({"version": _RESULT_VERSION, "key": key, "result": result}))


def evaluate_seed(
    train: ImageDataset, test: ImageDataset, job: EvalJob, seed: int, device: str | None
) -> dict[str, Any]:
    """One seed of ``job``: :func:`thresher.evaluate.evaluate` trained one model at a time."""
    from thresher.evaluate import evaluate

    result = evaluate(
        train,
        test,
        model=job.model,
        recipe=job.recipe,
        subset_ids=job.subset_ids,
        transform=job.transform,
        seeds=[seed],
        device=device,
        stack=False,
    )
    return result.to_dict()


def merge_seed_results(parts: Sequence[dict[str, Any]]) -> EvaluationResult:
    """One :class:`EvaluationResult` from single-seed results (``to_dict`` form), in order."""
    if not parts:
        raise ConfigError("nothing to merge: a job needs at least one seed")
    return EvaluationResult.merge([EvaluationResult.from_dict(p) for p in parts])
