"""Detection data: images with stable ids and ragged boxes, and canvases built from real digits.

A :class:`DetectionDataset` is an :class:`~thresher.data.types.ImageDataset` (so embedding,
filtering, the 3D view and export see images with ids as before) that also holds, per image,
any number of boxes with a class each. Images carry no image-level label (``labels`` is
``None``): the filter then treats the set as the thesis treated its detection sets, as one
group. ``classes`` names the box classes.

Boxes are stored flat (:attr:`DetectionDataset.boxes`, ``(M, 4)``) with per-image offsets
(:attr:`DetectionDataset.box_offsets`, ``(N + 1,)``): image ``i`` owns rows
``box_offsets[i]:box_offsets[i + 1]``. Coordinates are ``x1, y1, x2, y2`` in pixels of the stored
image, whose pixel grid spans ``[0, W] x [0, H]``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.data.types import ImageDataset, read_rows
from thresher.errors import ConfigError, DataError

# Normalised or rounded coordinates may overshoot the border by float noise (YOLO files carry
# six decimals); anything further out is an error, not something to clip silently.
BORDER_TOLERANCE_PX = 0.5


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.float32)


def _empty_labels() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class DetectionDataset(ImageDataset):
    """Images with stable ids and, per image, boxes with a class each.

    Attributes:
        boxes: ``(M, 4)`` float32 ``x1, y1, x2, y2`` in pixels, ``x1 < x2``, ``y1 < y2``, inside
            the image.
        box_labels: ``(M,)`` int64 class indices in ``[0, len(classes))``.
        box_offsets: ``(N + 1,)`` int64, non-decreasing, ``0`` first and ``M`` last.
        (and every attribute of :class:`ImageDataset`; ``labels`` is ``None``.)
    """

    boxes: np.ndarray = field(default_factory=_empty_boxes)
    box_labels: np.ndarray = field(default_factory=_empty_labels)
    box_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels is not None:
            raise DataError(
                f"{self.name}: a detection data set has boxes, not image labels; pass "
                "labels=None and give each box its class in box_labels"
            )
        if not self.classes:
            raise DataError(f"{self.name}: name the box classes (classes=...)")
        n = len(self)
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(self.box_labels)
        offsets = np.asarray(self.box_offsets)
        if offsets.shape != (n + 1,) or not np.issubdtype(offsets.dtype, np.integer):
            raise DataError(
                f"{self.name}: box_offsets must be {n + 1} integers (one more than images), "
                f"got shape {offsets.shape}"
            )
        offsets = offsets.astype(np.int64)
        if offsets[0] != 0 or offsets[-1] != boxes.shape[0] or (np.diff(offsets) < 0).any():
            raise DataError(
                f"{self.name}: box_offsets must rise from 0 to the number of boxes "
                f"({boxes.shape[0]})"
            )
        if labels.shape != (boxes.shape[0],) or (
            labels.size and not np.issubdtype(labels.dtype, np.integer)
        ):
            raise DataError(
                f"{self.name}: {boxes.shape[0]} boxes need as many integer box_labels, got "
                f"shape {labels.shape}"
            )
        labels = labels.astype(np.int64)
        owner = np.repeat(np.arange(n), np.diff(offsets))
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            bad = int(np.flatnonzero((labels < 0) | (labels >= len(self.classes)))[0])
            raise DataError(
                f"{self.name}: image {self.ids[owner[bad]]} has a box of class "
                f"{int(labels[bad])}, but there are {len(self.classes)} classes; fix the "
                "label or the class list"
            )
        h, w = self.image_size
        if not np.isfinite(boxes).all():
            bad = int(np.flatnonzero(~np.isfinite(boxes).all(axis=1))[0])
            raise DataError(f"{self.name}: image {self.ids[owner[bad]]} has a NaN or inf box")
        x1, y1, x2, y2 = boxes.T
        tol = BORDER_TOLERANCE_PX
        wrong = (
            (x2 <= x1) | (y2 <= y1) | (x1 < -tol) | (y1 < -tol) | (x2 > w + tol) | (y2 > h + tol)
        )
        if wrong.any():
            bad = int(np.flatnonzero(wrong)[0])
            raise DataError(
                f"{self.name}: image {self.ids[owner[bad]]} has box "
                f"{[round(float(v), 2) for v in boxes[bad]]} (x1, y1, x2, y2), empty or outside "
                f"its {w}x{h} pixels; fix or drop that box"
            )
        object.__setattr__(self, "boxes", np.clip(boxes, 0, [w, h, w, h]).astype(np.float32))
        object.__setattr__(self, "box_labels", labels)
        object.__setattr__(self, "box_offsets", offsets)

    # --- boxes -----------------------------------------------------------------------------
    @property
    def num_boxes(self) -> int:
        return int(self.boxes.shape[0])

    def targets(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(boxes (m, 4), labels (m,))`` of image ``index``."""
        a, b = int(self.box_offsets[index]), int(self.box_offsets[index + 1])
        return self.boxes[a:b], self.box_labels[a:b]

    def boxes_per_image(self) -> np.ndarray:
        """``(N,)`` number of boxes of each image."""
        return np.diff(self.box_offsets)

    def box_class_counts(self) -> np.ndarray:
        """``(num_classes,)`` number of boxes per class."""
        return np.bincount(self.box_labels, minlength=self.num_classes)

    # --- selection (boxes travel with their images) ----------------------------------------
    def take(self, indices: np.ndarray | Any, *, name: str | None = None) -> DetectionDataset:
        idx = np.asarray(indices, dtype=np.int64)
        if len(np.unique(idx)) != len(idx):
            raise DataError(f"{self.name}: a subset may not repeat a sample")
        starts, stops = self.box_offsets[idx], self.box_offsets[idx + 1]
        rows = (
            np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)])
            if len(idx)
            else np.zeros(0, dtype=np.int64)
        ).astype(np.int64)
        return DetectionDataset(
            images=read_rows(self.images, idx),
            labels=None,
            ids=self.ids[idx],
            classes=self.classes,
            name=name or self.name,
            source=dict(self.source),
            boxes=self.boxes[rows],
            box_labels=self.box_labels[rows],
            box_offsets=np.concatenate([[0], np.cumsum(stops - starts)]).astype(np.int64),
        )

    def fingerprint(self) -> str:
        """The image fingerprint extended by the boxes: equal iff images and boxes are equal."""
        h = hashlib.sha256(super().fingerprint().encode())
        h.update(b"boxes")
        for array in (self.boxes, self.box_labels, self.box_offsets):
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()


def is_detection(data: object) -> bool:
    return isinstance(data, DetectionDataset)


# --- canvases of real digits -------------------------------------------------------------------
def _tight_box(patch: np.ndarray, threshold: int) -> tuple[int, int, int, int] | None:
    """``(x1, y1, x2, y2)`` (exclusive ends) of the pixels of ``patch`` (H, W) above
    ``threshold``, or None when none is."""
    on = patch > threshold
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if not rows.size:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    if not len(others):
        return np.zeros(0)
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return np.asarray(inter / (area + areas - inter))


def make_canvases(
    source: ImageDataset,
    *,
    count: int,
    canvas: int = 64,
    objects: tuple[int, int] = (1, 3),
    scale: tuple[float, float] = (0.8, 1.3),
    max_overlap: float = 0.15,
    threshold: int = 48,
    seed: int = 0,
    name: str | None = None,
) -> DetectionDataset:
    """A detection set of ``count`` square canvases, each holding ``objects`` real images of
    ``source`` (grey, labelled: MNIST, Fashion-MNIST) at random places and scales.

    Every object's box is tight: the bounding box of its pixels brighter than ``threshold``
    (0-255) after scaling; its class is the source image's label. Objects overlap by at most
    ``max_overlap`` (IoU); an object that finds no free place in 30 draws is left out, so a
    canvas may hold fewer than drawn (never none). Pixels combine by maximum.

    Parameters
    ----------
    source : labelled ``(N, 1, h, w)`` uint8 images (the objects).
    count : canvases to make.
    canvas : the canvases' side in pixels.
    objects : ``(low, high)``: each canvas draws ``low..high`` objects (inclusive).
    scale : each object is resized by a factor drawn uniformly from this range.
    seed : all draws (which source images, places, scales) come from ``default_rng(seed)``.

    Returns
    -------
    :class:`DetectionDataset` with ids ``000000``..., ``source`` recording the recipe.
    """
    from PIL import Image

    labels = source.require_labels("make_canvases")
    if source.channels != 1 or source.images.dtype != np.uint8:
        raise DataError(
            f"{source.name}: canvases are built from grey uint8 images (MNIST, Fashion-MNIST), "
            f"got {source.channels} channel(s) of {source.images.dtype}"
        )
    if count < 1:
        raise ConfigError(f"count must be >= 1, got {count}")
    low, high = objects
    if not 1 <= low <= high:
        raise ConfigError(f"objects must be (low, high) with 1 <= low <= high, got {objects}")
    h0, w0 = source.image_size
    if not 0 < scale[0] <= scale[1] or canvas < round(max(h0, w0) * scale[1]):
        raise ConfigError(
            f"scale {scale} must be positive and the largest object "
            f"({round(max(h0, w0) * scale[1])} px) must fit the {canvas} px canvas"
        )
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 1, canvas, canvas), dtype=np.uint8)
    boxes: list[list[float]] = []
    box_labels: list[int] = []
    offsets = [0]
    for i in range(count):
        placed: list[np.ndarray] = []
        wanted = int(rng.integers(low, high + 1))
        for _ in range(wanted):
            k = int(rng.integers(len(source)))
            factor = float(rng.uniform(*scale))
            side_h, side_w = max(4, round(h0 * factor)), max(4, round(w0 * factor))
            patch = np.asarray(
                Image.fromarray(source.images[k, 0]).resize(
                    (side_w, side_h), Image.Resampling.BILINEAR
                )
            )
            tight = _tight_box(patch, threshold)
            if tight is None:
                continue
            for _try in range(30):
                top = int(rng.integers(0, canvas - side_h + 1))
                left = int(rng.integers(0, canvas - side_w + 1))
                box = np.array(
                    [left + tight[0], top + tight[1], left + tight[2], top + tight[3]],
                    dtype=np.float32,
                )
                if not (_iou(box, np.asarray(placed).reshape(-1, 4)) > max_overlap).any():
                    break
            else:
                continue
            region = images[i, 0, top : top + side_h, left : left + side_w]
            np.maximum(region, patch, out=region)
            placed.append(box)
            boxes.append(box.tolist())
            box_labels.append(int(labels[k]))
        if not placed:  # only blank source images were drawn
            raise DataError(
                f"{source.name}: canvas {i} got no object; the source images look blank "
                f"(no pixel above {threshold})"
            )
        offsets.append(len(boxes))
    return DetectionDataset(
        images=images,
        labels=None,
        ids=np.array([f"{i:06d}" for i in range(count)]),
        classes=source.classes,
        name=name or f"{source.name.split('/')[0]}-detection",
        source={
            "builder": "thresher.data.detection.make_canvases",
            "from": source.name,
            "from_fingerprint": source.fingerprint(),
            "count": count,
            "canvas": canvas,
            "objects": list(objects),
            "scale": list(scale),
            "max_overlap": max_overlap,
            "threshold": threshold,
            "seed": seed,
        },
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        box_labels=np.asarray(box_labels, dtype=np.int64),
        box_offsets=np.asarray(offsets, dtype=np.int64),
    )
