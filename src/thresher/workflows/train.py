"""The ``train`` step: train a model on a data set into a new run directory."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from thresher.data import ImageDataset
from thresher.errors import RunError
from thresher.store import Run
from thresher.workflows.run import WEIGHTS, DataSpec


@dataclass(frozen=True)
class TrainRunResult:
    """What ``train_run`` produced (shared by the CLI's table and its ``--json``)."""

    run_dir: str
    dataset: str
    model: str
    recipe: str
    epochs: int
    train_size: int
    test_size: int
    test_accuracy: float | None
    per_class_f1: list[float]
    seconds: float
    images_per_second: float
    device: str
    precision: str = "fp32"
    history: list[dict[str, float]] = field(default_factory=list)
    # object detection (``task == "detection"``): COCO box metrics on the test split and the
    # thesis's score (0.1 mAP50 + 0.9 mAP50-95); test_accuracy and per_class_f1 stay empty
    task: str = "classification"
    map50: float | None = None
    map50_95: float | None = None
    score: float | None = None
    per_class_ap: list[float | None] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_run(
    out: str | os.PathLike[str],
    *,
    data: DataSpec,
    model: str,
    recipe: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    precision: str | None = None,
) -> TrainRunResult:
    """Train ``model`` on ``data``'s training split, test it, and store it all in ``out``.

    ``precision`` (auto, fp32, bf16, fp16) overrides the recipe's and is stored in the run's
    recipe, so later retraining (evaluate, compare, reduce) uses it too; ``auto`` is resolved
    to what this device runs before it is stored."""
    from thresher.device import resolve_device
    from thresher.evaluate import class_metrics
    from thresher.models import model_spec, transform_for, uses_test_time_flip
    from thresher.train import fit, get_recipe, predict, save_checkpoint

    spec = model_spec(model)  # unknown model: fail before any data is read
    rec = get_recipe(recipe or spec.recipe)
    if epochs is not None:
        rec = rec.replace(epochs=epochs)
    data = data.resolved()
    dev = resolve_device(device)
    if precision is not None:
        from thresher.precision import resolve_precision

        rec = rec.replace(precision=resolve_precision(precision, dev))
    train = data.load("train")
    test = data.load("test")
    _check_compatible(train, test)
    _check_task(spec.task, train, model)
    transform = transform_for(model)
    run = Run.create(
        out,
        overwrite=overwrite,
        config={
            "data": asdict(data),
            "model": {
                "name": model,
                "num_classes": train.num_classes,
                "in_channels": train.channels,
            },
            "classes": list(train.classes),
            "recipe": rec.to_dict(),
            "seed": seed,
        },
        inputs={"train": train.fingerprint(), "test": test.fingerprint()},
    )
    if spec.task == "detection":
        return _train_detector(run, model, rec, train, test, seed=seed, device=dev)
    start = time.perf_counter()
    result = fit(model, train, recipe=rec, seed=seed, device=dev, transform=transform)
    seconds = time.perf_counter() - start
    save_checkpoint(result, run.file(WEIGHTS))
    logits = predict(
        result.model,
        test,
        transform=transform,
        device=dev,
        precision=rec.precision,
        test_time_flip=uses_test_time_flip(model),
    )
    m = class_metrics(
        test.require_labels("testing"), logits.argmax(1), num_classes=train.num_classes
    )
    metrics = {
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "confusion": m.confusion,
        "classes": list(train.classes),
    }
    history = [asdict(h) for h in result.history]
    run.write_table("train_history.parquet", {k: [h[k] for h in history] for k in history[0]})
    run.write_json("test_metrics.json", metrics)
    out_result = TrainRunResult(
        run_dir=str(run.path),
        dataset=train.name,
        model=model,
        recipe=rec.name,
        epochs=rec.epochs,
        train_size=len(train),
        test_size=len(test),
        test_accuracy=m.accuracy,
        per_class_f1=[float(v) for v in m.f1],
        seconds=seconds,
        images_per_second=len(train) * rec.epochs / seconds,
        device=str(dev),
        precision=result.precision,
        history=history,
    )
    run.record_step("train", {k: v for k, v in out_result.to_dict().items() if k != "history"})
    return out_result


def _check_task(task: str, train: ImageDataset, model: str) -> None:
    from thresher.data.detection import is_detection

    if task == "detection" and not is_detection(train):
        raise RunError(
            f"{model} is a detector but {train.name} has no boxes; give a detection set (a "
            "YOLO or COCO folder, mnist-detection) or choose a classifier (thresher models)"
        )
    if task != "detection" and is_detection(train):
        raise RunError(
            f"{train.name} is a detection set (boxes, no image labels) but {model} is a "
            "classifier; choose a detector such as --model det_tiny (thresher models)"
        )


def _train_detector(
    run: Run, model: str, rec: Any, train: Any, test: Any, *, seed: int, device: Any
) -> TrainRunResult:
    """The detection branch of :func:`train_run`: fit, score on the test split, store."""
    from thresher.train import save_checkpoint
    from thresher.train.detection import detection_metrics, fit_detector

    start = time.perf_counter()
    result = fit_detector(model, train, recipe=rec, seed=seed, device=device)
    seconds = time.perf_counter() - start
    save_checkpoint(result, run.file(WEIGHTS))
    m = detection_metrics(result.model, test, device=device, precision=result.precision)
    ap = [None if v != v else v for v in m.per_class_ap]  # NaN (no test box) -> null
    run.write_json(
        "test_metrics.json",
        {
            "task": "detection",
            "map50": m.map50,
            "map50_95": m.map50_95,
            "score": m.score,
            "per_class_ap": ap,
            "classes": list(train.classes),
        },
    )
    history = [asdict(h) for h in result.history]
    run.write_table("train_history.parquet", {k: [h[k] for h in history] for k in history[0]})
    out_result = TrainRunResult(
        run_dir=str(run.path),
        dataset=train.name,
        model=model,
        recipe=rec.name,
        epochs=rec.epochs,
        train_size=len(train),
        test_size=len(test),
        test_accuracy=None,
        per_class_f1=[],
        seconds=seconds,
        images_per_second=len(train) * rec.epochs / seconds,
        device=str(device),
        precision=result.precision,
        history=history,
        task="detection",
        map50=m.map50,
        map50_95=m.map50_95,
        score=m.score,
        per_class_ap=ap,
    )
    run.record_step("train", {k: v for k, v in out_result.to_dict().items() if k != "history"})
    return out_result


def _check_compatible(train: ImageDataset, test: ImageDataset) -> None:
    if train.classes != test.classes:
        raise RunError(
            f"train and test splits name different classes ({len(train.classes)} vs "
            f"{len(test.classes)}); both splits need the same class folders"
        )
    if train.images.shape[1:] != test.images.shape[1:]:
        raise RunError(
            f"train images are {train.images.shape[1:]} but test images are "
            f"{test.images.shape[1:]}; both splits need one image size"
        )
