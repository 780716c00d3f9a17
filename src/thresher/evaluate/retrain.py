"""Check a subset the way the papers do: retrain models on it with several seeds and test them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thresher.data.types import ImageDataset
from thresher.device import resolve_device
from thresher.errors import ConfigError, DataError
from thresher.evaluate.metrics import align_classes, class_metrics
from thresher.evaluate.result import EvaluationResult
from thresher.models import uses_test_time_flip
from thresher.train.ensemble import StackMode, train_many
from thresher.train.recipes import Recipe
from thresher.train.trainer import ModelLike, Transform, predict, resolve_recipe, resolve_transform


def evaluate(
    train: ImageDataset,
    test: ImageDataset,
    *,
    model: ModelLike,
    recipe: str | Recipe | None = None,
    subset_ids: Sequence[str] | np.ndarray | None = None,
    seeds: int | Sequence[int] = 5,
    device: str | torch.device | None = None,
    stack: StackMode = "auto",
    transform: Transform | str | None = None,
    keep_models: bool = False,
) -> EvaluationResult:
    """Train one model per seed on the subset ``subset_ids`` of ``train``; test each on ``test``.

    Parameters
    ----------
    train, test : labelled data sets with the same channels (and a size the model takes).
    model : registry name (e.g. ``"mnist_lenet"``), builder or module.
    recipe : recipe or its name; default the architecture's.
    subset_ids : ids of the training images to use; default all of ``train``.
    seeds : ``n`` for seeds ``0..n-1``, or an explicit list.
    device : default CUDA when present.
    stack : train the models stacked (see :func:`thresher.train.train_many`).
    transform : model input transform; default the architecture's.
    keep_models : keep the trained models in ``result.models``.

    Returns
    -------
    EvaluationResult with per-seed accuracy, per-class precision/recall/F1 and confusion
    matrices. Test classes the models never trained on are reported in ``result.warnings``
    (their recall and F1 are 0), not refused.

    Raises
    ------
    DataError: unlabelled sets, an empty subset, ids not in ``train``, repeated ids, or test
        images with a different number of channels.
    ConfigError: no seeds, repeated seeds.
    """
    prep = _prepare(train, test, subset_ids=subset_ids, seeds=seeds)
    recipe_ = resolve_recipe(model, recipe)
    tf = resolve_transform(model, transform)
    dev = resolve_device(device)
    results = train_many(
        model,
        train,
        recipe=recipe_,
        seeds=prep.seeds,
        subsets=[prep.positions] * len(prep.seeds),
        device=dev,
        stack=stack,
        transform=tf,
    )
    return _score(
        [r.model for r in results],
        test,
        prep,
        model=model,
        recipe=recipe_,
        transform=tf,
        device=dev,
        train_size=len(train),
        train_seconds=[r.seconds for r in results],
        stacked=all(r.stacked for r in results),
        keep_models=keep_models,
    )


def evaluate_trained(
    models: Sequence[torch.nn.Module],
    train: ImageDataset,
    test: ImageDataset,
    *,
    model: str,
    recipe: Recipe,
    seeds: Sequence[int],
    train_seconds: Sequence[float],
    subset_ids: Sequence[str] | np.ndarray | None = None,
    device: str | torch.device | None = None,
    transform: Transform | str | None = None,
) -> EvaluationResult:
    """The :func:`evaluate` result of models already trained on the subset ``subset_ids`` of
    ``train`` with ``recipe`` and ``seeds`` (one model per seed, in order): tested exactly as
    ``evaluate`` tests the models it trains, e.g. to count a run's own model as one seed of the
    full-set baseline instead of training it again."""
    prep = _prepare(train, test, subset_ids=subset_ids, seeds=list(seeds))
    if not len(models) == len(prep.seeds) == len(train_seconds):
        raise ConfigError(
            f"{len(models)} models, {len(prep.seeds)} seeds and {len(train_seconds)} training "
            "times: give one seed and one time per model"
        )
    return _score(
        list(models),
        test,
        prep,
        model=model,
        recipe=recipe,
        transform=resolve_transform(model, transform),
        device=resolve_device(device),
        train_size=len(train),
        train_seconds=list(train_seconds),
        stacked=False,
        keep_models=False,
    )


@dataclass(frozen=True)
class _Prepared:
    """What an evaluation checks and counts before any model trains."""

    seeds: list[int]
    positions: np.ndarray
    alignment: Any
    subset_counts: np.ndarray
    support: np.ndarray
    warnings: tuple[str, ...]


def _prepare(
    train: ImageDataset,
    test: ImageDataset,
    *,
    subset_ids: Sequence[str] | np.ndarray | None,
    seeds: int | Sequence[int],
) -> _Prepared:
    train.require_labels("evaluation (training set)")
    test.require_labels("evaluation (test set)")
    if test.channels != train.channels:
        raise DataError(
            f"{test.name} has {test.channels} channel(s) but {train.name} has {train.channels}; "
            "evaluate on a test set of the same kind of images"
        )
    seed_list = _seed_list(seeds)
    positions = _subset_positions(train, subset_ids)
    alignment = align_classes(train, test)
    k = len(alignment.classes)
    subset_counts = np.bincount(train.labels[positions], minlength=k)  # type: ignore[index]
    support = np.bincount(alignment.test_labels, minlength=k)
    warnings = [
        f"test class {name!r} is not a training class; the models cannot predict it (F1 0)"
        for name in alignment.unseen
    ]
    warnings += [
        f"class {alignment.classes[c]!r} has no image in the training subset but "
        f"{int(support[c])} in the test set; the models never saw it"
        for c in range(train.num_classes)
        if subset_counts[c] == 0 and support[c] > 0
    ]
    return _Prepared(seed_list, positions, alignment, subset_counts, support, tuple(warnings))


def _score(
    models: list[torch.nn.Module],
    test: ImageDataset,
    prep: _Prepared,
    *,
    model: ModelLike,
    recipe: Recipe,
    transform: Transform,
    device: torch.device,
    train_size: int,
    train_seconds: list[float],
    stacked: bool,
    keep_models: bool,
) -> EvaluationResult:
    k = len(prep.alignment.classes)
    per_seed = []
    for trained in models:
        logits = predict(
            trained,
            test,
            transform=transform,
            device=device,
            precision=recipe.precision,
            test_time_flip=uses_test_time_flip(model),
        )
        per_seed.append(class_metrics(prep.alignment.test_labels, logits.argmax(1), num_classes=k))
    return EvaluationResult(
        model=model if isinstance(model, str) else getattr(model, "__name__", type(model).__name__),
        recipe=recipe,
        seeds=tuple(prep.seeds),
        classes=prep.alignment.classes,
        train_size=train_size,
        subset_size=len(prep.positions),
        test_size=len(test),
        accuracy=np.array([m.accuracy for m in per_seed]),
        precision=np.stack([m.precision for m in per_seed]),
        recall=np.stack([m.recall for m in per_seed]),
        f1=np.stack([m.f1 for m in per_seed]),
        confusion=np.stack([m.confusion for m in per_seed]),
        support=prep.support.astype(np.int64),
        subset_class_counts=prep.subset_counts.astype(np.int64),
        train_seconds=np.array(train_seconds, dtype=np.float64),
        stacked=stacked,
        warnings=prep.warnings,
        models=tuple(models) if keep_models else (),
    )


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ConfigError(f"seeds must be a count or a list of integers, got {seeds!r}")
    if isinstance(seeds, int | np.integer):
        if seeds < 1:
            raise ConfigError(f"seeds must be >= 1 models, got {seeds}; e.g. seeds=5")
        return list(range(int(seeds)))
    seed_list = [int(s) for s in seeds]
    if not seed_list:
        raise ConfigError("seeds is empty; give a count (seeds=5) or a list of seeds")
    if len(set(seed_list)) != len(seed_list):
        raise ConfigError(f"seeds repeat a value ({seed_list}); repeated seeds give equal models")
    return seed_list


def _subset_positions(
    train: ImageDataset, subset_ids: Sequence[str] | np.ndarray | None
) -> np.ndarray:
    if subset_ids is None:
        return np.arange(len(train), dtype=np.int64)
    ids = np.asarray(subset_ids).astype(str).reshape(-1)
    if ids.size == 0:
        raise DataError("the subset is empty; select at least one training image to evaluate")
    if len(np.unique(ids)) != ids.size:
        raise DataError("the subset names an image more than once; pass each id once")
    return train.indices_of(ids)
