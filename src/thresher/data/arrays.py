"""In-memory arrays as data sets: ``from_arrays`` and scikit-learn's real 8x8 digits."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from thresher.data.subset import stratified_indices, stratified_split
from thresher.data.types import ImageDataset
from thresher.errors import DataError

_CHANNEL_COUNTS = (1, 3)


def index_ids(prefix: str, n: int, *, width: int | None = None) -> np.ndarray:
    """``prefix/0000`` ...: the position, zero-padded to at least 4 digits."""
    w = width or max(4, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}/{i:0{w}d}" for i in range(n)])


def to_nchw(images: Any, *, channels_last: bool | None, name: str) -> np.ndarray:
    """``(N, C, H, W)`` view of NHWC, NCHW or NHW ``images``.

    ``channels_last=None`` infers the layout from where a 1- or 3-sized axis sits and refuses
    to guess when both ends fit (e.g. ``(N, 3, 32, 3)``).
    """
    arr = np.asarray(images)
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim != 4:
        raise DataError(
            f"{name}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape "
            f"{arr.shape}; stack single images into one array first"
        )
    if channels_last is None:
        first, last = arr.shape[1] in _CHANNEL_COUNTS, arr.shape[3] in _CHANNEL_COUNTS
        if first == last:
            raise DataError(
                f"{name}: cannot tell the channel axis of shape {arr.shape}; pass "
                "channels_last=True (N, H, W, C) or channels_last=False (N, C, H, W)"
            )
        channels_last = last
    return arr.transpose(0, 3, 1, 2) if channels_last else arr


def normalise_pixels(arr: np.ndarray, *, scale: float | None, name: str) -> np.ndarray:
    """uint8 stays uint8; other integers in [0, 255] become uint8; floats become float32 in
    [0, 1] (divided by ``scale`` first when given)."""
    if arr.dtype == np.bool_:
        raise DataError(f"{name}: boolean images are not supported; convert to uint8 (x * 255)")
    if scale is not None:
        if scale <= 0:
            raise DataError(f"{name}: scale must be positive, got {scale}")
        arr = arr.astype(np.float32) / np.float32(scale)
    elif arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(
                f"{name}: integer pixels must lie in [0, 255], got [{lo}, {hi}]; pass "
                "scale=<max value> to divide them into [0, 1]"
            )
        return np.ascontiguousarray(arr.astype(np.uint8))
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{name}: images must be numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = arr[np.isfinite(arr)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise DataError(
            f"{name}: float pixels must lie in [0, 1], got [{low:g}, {high:g}]; pass scale=255 "
            "(or the data's maximum) to divide them, or convert to uint8"
        )
    return arr


def from_arrays(
    images: Any,
    labels: Any = None,
    *,
    ids: Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    name: str = "arrays",
    channels_last: bool | None = None,
    scale: float | None = None,
    source: dict[str, Any] | None = None,
) -> ImageDataset:
    """A data set from arrays.

    Parameters:
        images: ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)``; uint8 (0-255), integers in
            [0, 255], or floats in [0, 1] (anything array-like, e.g. a CPU torch tensor).
        labels: ``(N,)`` class indices, or ``None`` for unlabelled data.
        ids: one unique string per image; default ``<name>/0000`` ... by position.
        classes: class names, index = label; default ``"0".."K-1"``.
        channels_last: the layout of 4-D input; ``None`` infers it (see :func:`to_nchw`).
        scale: divide the pixels by this first (e.g. 255 for floats in [0, 255]).

    Returns:
        :class:`ImageDataset` with images ``(N, C, H, W)`` uint8 or float32.
    """
    arr = normalise_pixels(
        to_nchw(images, channels_last=channels_last, name=name), scale=scale, name=name
    )
    n = arr.shape[0]
    label_arr = None
    if labels is not None:
        label_arr = np.asarray(labels)
        integral = np.issubdtype(label_arr.dtype, np.floating) and bool(
            np.all(label_arr == np.round(label_arr))
        )
        if integral:
            label_arr = label_arr.astype(np.int64)
        if label_arr.ndim != 1 or not np.issubdtype(label_arr.dtype, np.integer):
            raise DataError(
                f"{name}: labels must be (N,) integer class indices, got shape "
                f"{label_arr.shape} {label_arr.dtype}; map class names to 0..K-1 first"
            )
    return ImageDataset(
        images=arr,
        labels=label_arr,
        ids=index_ids(name, n) if ids is None else np.asarray(ids),
        classes=tuple(classes) if classes is not None else (),
        name=name,
        source=dict(source) if source is not None else {"format": "arrays"},
    )


DIGITS_SPLITS = ("train", "test", "all")


@functools.cache
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(1797, 8, 8)`` uint8 and ``(1797,)`` int64, read-only."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    pixels.flags.writeable = False
    labels.flags.writeable = False
    return pixels, labels


def load_digits(
    *,
    split: str = "all",
    seed: int = 0,
    test_fraction: float = 0.2,
    limit: int | None = None,
) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits as a data set.

    Pixel values 0..16 are rescaled to uint8 0..255 (``round(v * 255 / 16)``). Ids
    ``digits/0000`` ... are the position in scikit-learn's array, the same in every split.
    There is no published split: ``"train"``/``"test"`` are a seeded stratified
    ``1 - test_fraction`` / ``test_fraction`` partition (the two never overlap for one seed).

    Returns:
        :class:`ImageDataset` with ``images (N, 1, 8, 8) uint8``, classes ``"0".."9"``.
    """
    if split not in DIGITS_SPLITS:
        raise DataError(f"unknown digits split {split!r}; use one of {', '.join(DIGITS_SPLITS)}")
    pixels, labels = _digits_arrays()
    keep = np.arange(len(labels))
    if split != "all":
        train, test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
        keep = train if split == "train" else test
    if limit is not None:
        keep = keep[stratified_indices(labels[keep], len(keep), limit=limit, seed=seed)]
    source: dict[str, Any] = {"format": "sklearn-digits", "split": split, "seed": seed}
    if split != "all":
        source["test_fraction"] = test_fraction
    if limit is not None:
        source["limit"] = {"limit": limit, "seed": seed}
    return ImageDataset(
        images=pixels[keep][:, None],
        labels=labels[keep],
        ids=index_ids("digits", len(labels))[keep],
        classes=tuple(str(d) for d in range(10)),
        name=f"digits/{split}",
        source=source,
    )
