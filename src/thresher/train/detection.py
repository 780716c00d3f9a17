"""Training and scoring detectors: the detection counterpart of :func:`thresher.train.fit`.

The score is the thesis's (seed 002, eq. 5.1): ``score = 0.1 x mAP50 + 0.9 x mAP50-95``, with
COCO's mean average precision computed by ``torchmetrics``' ``MeanAveragePrecision`` on the
``faster_coco_eval`` backend (it matches ``pycocotools`` and is about 5x faster).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from thresher.data.detection import DetectionDataset
from thresher.data.types import ImageDataset
from thresher.device import resolve_device
from thresher.errors import ConfigError, DataError
from thresher.progress import track
from thresher.train.recipes import Recipe, get_recipe, set_lr
from thresher.train.trainer import (
    EpochStats,
    ModelLike,
    TrainResult,
    batch_bounds,
    build_model,
    check_finite,
    check_indices,
    data_generator,
    model_name_of,
    resolve_recipe,
    seeded_rng,
)

MAP50_WEIGHT, MAP50_95_WEIGHT = 0.1, 0.9


def thesis_score(map50: float, map50_95: float) -> float:
    """The thesis's eq. 5.1: ``0.1 x mAP50 + 0.9 x mAP50-95``."""
    return MAP50_WEIGHT * map50 + MAP50_95_WEIGHT * map50_95


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO box metrics of a detector on a labelled detection set.

    Attributes:
        map50: mean AP at IoU 0.5 (in [0, 1]).
        map50_95: mean AP averaged over IoU 0.5:0.05:0.95.
        score: the thesis's ``0.1 x map50 + 0.9 x map50_95``.
        per_class_ap: ``(num_classes,)`` AP at 0.5:0.95 per class (NaN for a class with no box
            in the test set).
        images: test images.
    """

    map50: float
    map50_95: float
    score: float
    per_class_ap: tuple[float, ...]
    images: int


def _require_detection(data: object, what: str) -> DetectionDataset:
    if not isinstance(data, DetectionDataset):
        raise DataError(
            f"{what} needs a detection data set (images with boxes: a YOLO or COCO folder, or "
            f"mnist-detection), got {type(data).__name__}; train a classifier on it instead"
        )
    return data


def _targets(data: DetectionDataset, rows: np.ndarray, device: torch.device) -> list[dict]:
    out = []
    for r in rows.tolist():
        boxes, labels = data.targets(int(r))
        out.append(
            {
                "boxes": torch.from_numpy(np.ascontiguousarray(boxes)).to(device),
                "labels": torch.from_numpy(np.ascontiguousarray(labels)).to(device),
            }
        )
    return out


def _images(data: DetectionDataset, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    from thresher.data.types import read_rows

    x = torch.from_numpy(read_rows(data.images, np.sort(rows))[np.argsort(np.argsort(rows))])
    x = x.to(device)
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def fit_detector(
    model: ModelLike,
    train: ImageDataset,
    *,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    indices: np.ndarray | Sequence[int] | None = None,
    precision: str | None = None,
) -> TrainResult:
    """Train one detector on ``train`` (or its rows ``indices``).

    Parameters
    ----------
    model : a registered detector name (``det_tiny``), a builder or an ``nn.Module`` following
        torchvision's detection interface (copied; the caller's module is not changed).
    train : a :class:`DetectionDataset` (anything else is refused); images without boxes
        train as background.
    recipe : a :class:`Recipe` or its name; default the architecture's (``det-tiny``). Its
        ``augment`` must be empty (flips and crops would have to move the boxes).
    seed : decides the initial weights and the batch order.
    precision : as :func:`thresher.train.fit` (bf16 autocast where the CPU has it).

    Returns
    -------
    TrainResult whose ``accuracy`` column is 0 (a detector has no training accuracy) and
    ``loss`` the mean of the summed loss terms. Same seed, data, precision and thread count
    give identical weights.
    """
    from thresher.precision import autocast, resolve_precision

    data = _require_detection(train, "training a detector")
    rec = resolve_recipe(model, recipe)
    if rec.augment:
        raise ConfigError(
            f"recipe {rec.name!r} augments with {', '.join(rec.augment)}, which would move the "
            "boxes; use a recipe without augment for a detector"
        )
    idx = check_indices(indices, len(data), what="indices")
    dev = resolve_device(device)
    prec = resolve_precision(precision or rec.precision, dev)
    net = build_model(model, seed=seed, num_classes=data.num_classes, in_channels=data.channels)
    net.to(dev).train()
    n = len(idx)
    gen = data_generator(seed, dev)
    bounds = batch_bounds(n, rec.batch_size)
    optimizer = rec.make_optimizer(net)
    history: list[EpochStats] = []
    step = 0
    with seeded_rng(seed, dev):
        for epoch in range(1, rec.epochs + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=gen, device=dev).cpu().numpy()
            loss_sum = 0.0
            lr = rec.lr
            for a, b in track(bounds, total=len(bounds), desc=f"epoch {epoch}/{rec.epochs}"):
                rows = idx[perm[a:b]]
                xb = _images(data, rows, dev)
                targets = _targets(data, rows, dev)
                lr = rec.lr_at(step, steps_per_epoch=len(bounds))
                set_lr(optimizer, lr)
                with autocast(prec, dev):
                    losses = net(list(xb), targets)
                loss = sum(v.float() for v in losses.values())
                assert isinstance(loss, torch.Tensor)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # Focal-loss heads take large steps early on; clipping keeps the run finite.
                nn.utils.clip_grad_norm_(net.parameters(), 10.0)
                optimizer.step()
                step += 1
                loss_sum += float(loss.detach()) * (b - a)
            mean_loss = loss_sum / n
            seconds = time.perf_counter() - t0
            check_finite(mean_loss, epoch=epoch)
            history.append(
                EpochStats(
                    epoch=epoch,
                    loss=mean_loss,
                    accuracy=0.0,
                    seconds=seconds,
                    images_per_s=n / seconds if seconds > 0 else float("inf"),
                    lr=lr,
                )
            )
    net.eval().cpu()
    return TrainResult(
        model=net,
        history=tuple(history),
        recipe=rec if isinstance(rec, Recipe) else get_recipe(rec),
        seed=int(seed),
        num_train=n,
        num_classes=data.num_classes,
        in_channels=data.channels,
        model_name=model_name_of(model),
        device=str(dev),
        precision=prec,
    )


@torch.inference_mode()
def predict_boxes(
    model: nn.Module,
    data: DetectionDataset,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> list[dict[str, np.ndarray]]:
    """Per image ``{"boxes": (m, 4), "scores": (m,), "labels": (m,)}`` of ``model`` (eval mode;
    the model is put back in the mode it was in)."""
    from thresher.precision import autocast, resolve_precision

    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    was_training = model.training
    model.to(dev).eval()
    out: list[dict[str, np.ndarray]] = []
    try:
        for a, b in batch_bounds(len(data), batch_size):
            xb = _images(data, np.arange(a, b), dev)
            with autocast(prec, dev):
                found = model(list(xb))
            out.extend({k: v.float().cpu().numpy() if k != "labels" else v.cpu().numpy()
                        for k, v in d.items()} for d in found)  # fmt: skip
    finally:
        model.train(was_training)
    return out


def detection_metrics(
    model: nn.Module,
    data: ImageDataset,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    precision: str = "fp32",
) -> DetectionMetrics:
    """mAP50, mAP50-95 and the thesis's score of ``model`` on ``data``."""
    test = _require_detection(data, "scoring a detector")
    from torchmetrics.detection import MeanAveragePrecision

    found = predict_boxes(model, test, batch_size=batch_size, device=device, precision=precision)
    # COCO's own limit of 100 detections per image (maxDets) holds; an untrained detector
    # may return more, which only lowers its own score, so the warning is off.
    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        backend="faster_coco_eval",
        class_metrics=True,
    )
    metric.warn_on_many_detections = False
    preds = [{k: torch.from_numpy(v) for k, v in d.items()} for d in found]
    truth = []
    for i in range(len(test)):
        boxes, labels = test.targets(i)
        truth.append({"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels)})
    metric.update(preds, truth)
    res = metric.compute()
    per_class = np.full(test.num_classes, np.nan)
    classes = res["classes"].reshape(-1).tolist()
    for c, ap in zip(classes, res["map_per_class"].reshape(-1).tolist(), strict=True):
        per_class[int(c)] = ap if ap >= 0 else np.nan
    m50, m5095 = max(float(res["map_50"]), 0.0), max(float(res["map"]), 0.0)
    return DetectionMetrics(
        map50=m50,
        map50_95=m5095,
        score=thesis_score(m50, m5095),
        per_class_ap=tuple(float(v) for v in per_class),
        images=len(test),
    )
