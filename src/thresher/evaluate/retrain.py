"""Check a subset the way the papers do: retrain models on it with several seeds and test them."""

from __future__ import annotations

from collections.abc import Sequence

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
    train.require_labels("evaluation (training set)")
    test.require_labels("evaluation (test set)")
    if test.channels != train.channels:
        raise DataError(
            f"{test.name} has {test.channels} channel(s) but {train.name} has {train.channels}; "
            "evaluate on a test set of the same kind of images"
        )
    seed_list = _seed_list(seeds)
    positions = _subset_positions(train, subset_ids)
    recipe_ = resolve_recipe(model, recipe)
    tf = resolve_transform(model, transform)
    dev = resolve_device(device)

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

    results = train_many(
        model,
        train,
        recipe=recipe_,
        seeds=seed_list,
        subsets=[positions] * len(seed_list),
        device=dev,
        stack=stack,
        transform=tf,
    )
    per_seed = []
    for res in results:
        logits = predict(
            res.model,
            test,
            transform=tf,
            device=dev,
            precision=recipe_.precision,
            test_time_flip=uses_test_time_flip(model),
        )
        per_seed.append(class_metrics(alignment.test_labels, logits.argmax(1), num_classes=k))

    return EvaluationResult(
        model=model if isinstance(model, str) else getattr(model, "__name__", type(model).__name__),
        recipe=recipe_,
        seeds=tuple(seed_list),
        classes=alignment.classes,
        train_size=len(train),
        subset_size=len(positions),
        test_size=len(test),
        accuracy=np.array([m.accuracy for m in per_seed]),
        precision=np.stack([m.precision for m in per_seed]),
        recall=np.stack([m.recall for m in per_seed]),
        f1=np.stack([m.f1 for m in per_seed]),
        confusion=np.stack([m.confusion for m in per_seed]),
        support=support.astype(np.int64),
        subset_class_counts=subset_counts.astype(np.int64),
        train_seconds=np.array([r.seconds for r in results]),
        stacked=all(r.stacked for r in results),
        warnings=tuple(warnings),
        models=tuple(r.model for r in results) if keep_models else (),
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
