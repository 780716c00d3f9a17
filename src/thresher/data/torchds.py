"""Materialise any ``torch.utils.data.Dataset`` of ``(image, label)`` pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thresher.data.arrays import index_ids, normalise_pixels
from thresher.data.decode import pil_to_array
from thresher.data.types import ImageDataset
from thresher.errors import DataError
from thresher.progress import track


def _image_to_chw(image: Any, *, where: str) -> np.ndarray:
    """A PIL image, a CHW tensor or an HWC/CHW/HW array as a ``(C, H, W)`` array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        arr = pil_to_array(image)
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    is_tensor = type(image).__module__.startswith("torch")
    if is_tensor:
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr[None]
    if arr.ndim == 3:
        if is_tensor or (arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3)):
            return arr  # torch images are CHW by convention
        if arr.shape[2] in (1, 3):
            return arr.transpose(2, 0, 1)
    raise DataError(
        f"{where}: cannot read an image of type {type(image).__name__} with shape "
        f"{getattr(arr, 'shape', None)}; return a PIL image, a (C, H, W) tensor or an "
        "(H, W, C) array"
    )


def _label_of(label: Any, *, where: str) -> int | None:
    if label is None:
        return None
    if hasattr(label, "item"):
        label = label.item()
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    raise DataError(
        f"{where}: label {label!r} is not a class index; the dataset must return (image, int label)"
    )


def from_torch_dataset(
    ds: Any,
    *,
    ids: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    limit: int | None = None,
    name: str | None = None,
) -> ImageDataset:
    """Read every ``(image, label)`` item of a map-style torch dataset into memory.

    Parameters:
        ds: indexable with ``len()``; items are ``(image, label)`` (or ``image`` alone for
            unlabelled data). Images are PIL images, CHW tensors (uint8 or float in [0, 1]) or
            HWC arrays; all must share one shape. Transforms of ``ds`` are applied as usual.
        ids: one id per item; default ``<name>/0000`` ... by index.
        classes: class names; default ``ds.classes`` when the dataset has it.
        limit: read only the first ``limit`` items.
        name: data set name; default the dataset's class name.

    Returns:
        :class:`ImageDataset` (labels ``None`` when the items carry none).
    """
    title = name or type(ds).__name__
    try:
        total = len(ds)
    except TypeError as err:
        raise DataError(
            f"{title}: the dataset has no len(); use from_batches for iterable data"
        ) from err
    n = total if limit is None else min(limit, total)
    if n == 0:
        raise DataError(f"{title}: the dataset is empty; check how it was built")
    first_shape: tuple[int, ...] | None = None
    images: list[np.ndarray] = []
    labels: list[int | None] = []
    for i in track(range(n), total=n, desc=f"reading {title}"):
        item = ds[i]
        where = f"{title} item {i}"
        image, label = item if isinstance(item, (tuple, list)) and len(item) == 2 else (item, None)
        chw = _image_to_chw(image, where=where)
        if first_shape is None:
            first_shape = chw.shape
        elif chw.shape != first_shape:
            raise DataError(
                f"{where} has shape {chw.shape} but item 0 has {first_shape}; all images must "
                "have one size: add a Resize/CenterCrop to the dataset's transform"
            )
        images.append(chw)
        labels.append(_label_of(label, where=where))
    stacked = np.stack(images)
    if stacked.dtype != np.uint8 and np.issubdtype(stacked.dtype, np.integer):
        stacked = stacked.astype(np.int64)
    pixels = normalise_pixels(stacked, scale=None, name=title)
    has = [lab is not None for lab in labels]
    if any(has) and not all(has):
        raise DataError(f"{title}: item {has.index(False)} has no label but others do")
    names = classes if classes is not None else getattr(ds, "classes", None)
    return ImageDataset(
        images=pixels,
        labels=np.array(labels, dtype=np.int64) if all(has) else None,
        ids=index_ids(title, n) if ids is None else np.asarray(ids)[:n],
        classes=tuple(str(c) for c in names) if names is not None else (),
        name=title,
        source={"format": "torch-dataset", "class": type(ds).__qualname__, "limit": limit},
    )
