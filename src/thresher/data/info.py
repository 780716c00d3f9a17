"""``dataset_info``: the summary ``thresher data info`` prints."""

from __future__ import annotations

from typing import Any

import numpy as np

from thresher.data.types import ImageDataset


def dataset_info(ds: ImageDataset) -> dict[str, Any]:
    """Size, shape, dtype and class balance of ``ds`` as a JSON-ready dict.

    Keys: ``name``, ``size``, ``shape`` ``[C, H, W]``, ``dtype``, ``labelled``,
    ``num_classes``, ``classes``, ``counts`` (class name -> samples), ``imbalance_ratio``
    (largest / smallest non-empty class; ``None`` when unlabelled), ``empty_classes``,
    ``source``. A detection set counts boxes: ``counts`` holds boxes per class, and
    ``boxes`` (all boxes) and ``boxes_per_image`` (mean) are added.
    """
    info: dict[str, Any] = {
        "name": ds.name,
        "size": len(ds),
        "shape": [ds.channels, *ds.image_size],
        "dtype": str(ds.images.dtype),
        "labelled": ds.is_labelled,
        "num_classes": ds.num_classes,
        "classes": list(ds.classes),
        "counts": {},
        "imbalance_ratio": None,
        "empty_classes": [],
        "source": {k: v for k, v in ds.source.items() if k != "files"},  # files: per-id paths
    }
    from thresher.data.detection import DetectionDataset

    if isinstance(ds, DetectionDataset):
        box_counts = ds.box_class_counts()
        info["counts"] = {c: int(n) for c, n in zip(ds.classes, box_counts, strict=True)}
        info["boxes"] = ds.num_boxes
        info["boxes_per_image"] = ds.num_boxes / len(ds)
        present = box_counts[box_counts > 0]
        if present.size:
            info["imbalance_ratio"] = float(present.max() / present.min())
        info["empty_classes"] = [c for c, n in zip(ds.classes, box_counts, strict=True) if n == 0]
    if ds.labels is not None:
        counts = ds.class_counts()
        present = counts[counts > 0]
        info["counts"] = {c: int(n) for c, n in zip(ds.classes, counts, strict=True)}
        info["imbalance_ratio"] = float(present.max() / present.min())
        info["empty_classes"] = [c for c, n in zip(ds.classes, counts, strict=True) if n == 0]
        info["min_class_count"] = int(np.min(counts))
        info["max_class_count"] = int(np.max(counts))
    return info
