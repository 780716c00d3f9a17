"""The in-memory data set every part of Thresher works on."""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.errors import DataError

FINGERPRINT_CHUNK_BYTES = 64 << 20


def read_rows(images: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
    """``images[rows]`` as a new in-memory array.

    For a whole memory-mapped ``.npy`` (a pixel cache) the rows are read with ``pread``: a
    gather through the map would make gigabytes of it resident (the kernel maps whole
    read-ahead windows around each touched row: 4,096 random 12 KB rows mapped 1.7 GB,
    measured), a ``pread`` copies just the rows, at the same speed."""
    whole_map = (
        isinstance(images, np.memmap)
        and isinstance(images.base, mmap.mmap)
        and images.flags.c_contiguous
        and images.filename is not None
    )
    if not whole_map or not isinstance(images, np.memmap):
        out = np.asarray(images[rows])
        release_mapped_pages(images)
        return out
    filename = str(images.filename)
    base = int(images.offset)
    row_bytes = int(np.prod(images.shape[1:])) * images.itemsize
    fd = os.open(filename, os.O_RDONLY)
    try:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(images.shape[0])
            if step == 1:
                out = np.empty((max(0, stop - start), *images.shape[1:]), dtype=images.dtype)
                _pread_into(fd, out, base + start * row_bytes)
                return out
            rows = np.arange(start, stop, step)
        idx = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(idx), *images.shape[1:]), dtype=images.dtype)
        for k, row in enumerate(idx.tolist()):
            if not -images.shape[0] <= row < images.shape[0]:
                raise IndexError(f"row {row} is out of bounds for {images.shape[0]} images")
            _pread_into(fd, out[k], base + (row % images.shape[0]) * row_bytes)
        return out
    finally:
        os.close(fd)


def _pread_into(fd: int, out: np.ndarray, offset: int) -> None:
    view = memoryview(out.data).cast("B")
    while len(view):
        got = os.preadv(fd, [view], offset)
        if got <= 0:
            raise OSError(f"short read at byte {offset} of a memory-mapped array")
        view, offset = view[got:], offset + got


def release_mapped_pages(array: Any) -> None:
    """Unmap the pages of a memory-mapped array that this process has read (``madvise
    DONTNEED``); the data stay in the page cache, so a later read costs no disk access.

    Reading a large memory map page by page would otherwise count all of it in the process's
    resident memory; a no-op for in-memory arrays."""
    mapped = getattr(array, "_mmap", None)  # np.memmap (and its views) keep their mmap here
    if mapped is not None and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Images with stable ids and optional labels.

    Attributes:
        images: ``(N, C, H, W)`` array, ``uint8`` in [0, 255] or ``float32`` already in [0, 1].
        labels: ``(N,)`` int64 class indices in ``[0, len(classes))``, or ``None`` when unlabelled.
        ids: ``(N,)`` unique strings; the same sample keeps the same id across loads and subsets.
        classes: class names, index = label; empty when unlabelled and no names are known.
        name: a short human name ("mnist/train").
        source: provenance (paths, checksums, builder parameters) recorded in run manifests.
    """

    images: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray
    classes: tuple[str, ...] = ()
    name: str = "dataset"
    source: dict[str, Any] = field(default_factory=dict)
    # The fingerprint of exactly these arrays when the loader already knows it (a pixel cache
    # records it when built), so a 30 GB memory map is not hashed by every command. Never
    # carried over to a subset or a copy.
    known_fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        images, ids = self.images, self.ids
        if not isinstance(images, np.ndarray) or images.ndim != 4:
            shape = getattr(images, "shape", None)
            raise DataError(
                f"{self.name}: images must be an (N, C, H, W) array, got shape {shape}; "
                "add a channel axis for grey images (x[:, None])"
            )
        if images.dtype not in (np.uint8, np.float32):
            raise DataError(
                f"{self.name}: images must be uint8 (0-255) or float32 (0-1), got {images.dtype}; "
                "convert with .astype(np.uint8) or .astype(np.float32)"
            )
        n = images.shape[0]
        if n == 0:
            raise DataError(f"{self.name}: the data set is empty; check the path and the split")
        if images.dtype == np.float32 and not np.isfinite(images).all():
            bad = int(np.flatnonzero(~np.isfinite(images).reshape(n, -1).all(axis=1))[0])
            raise DataError(
                f"{self.name}: image {ids[bad] if len(ids) > bad else bad} contains NaN or inf; "
                "clean or drop it before loading"
            )
        if images.dtype == np.float32:
            low, high = float(images.min()), float(images.max())
            if low < 0.0 or high > 1.0:
                # [0, 255] floats would be divided by 255 nowhere and train on a wrong scale
                hint = (
                    "they look like 0-255 pixel values: divide by 255, or pass .astype(np.uint8)"
                    if high > 1.0 and low >= 0.0
                    else "rescale them to [0, 1] (or pass uint8 0-255)"
                )
                raise DataError(
                    f"{self.name}: float images must lie in [0, 1], got values in "
                    f"[{low:g}, {high:g}]; {hint}"
                )
        object.__setattr__(self, "ids", np.asarray(ids).astype(str))
        if self.ids.shape != (n,):
            raise DataError(
                f"{self.name}: {n} images but {self.ids.shape[0] if self.ids.ndim else 0} ids; "
                "give exactly one id per image"
            )
        if len(np.unique(self.ids)) != n:
            raise DataError(
                f"{self.name}: sample ids are not unique; ids must name one sample each"
            )
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (n,):
                raise DataError(
                    f"{self.name}: {n} images but {labels.shape[0] if labels.ndim else 0} labels; "
                    "the image and label files must come from the same split"
                )
            if not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"{self.name}: labels must be integers, got {labels.dtype}")
            labels = labels.astype(np.int64)
            k = len(self.classes) if self.classes else int(labels.max()) + 1
            if labels.min() < 0 or labels.max() >= k:
                bad = int(np.flatnonzero((labels < 0) | (labels >= k))[0])
                raise DataError(
                    f"{self.name}: label {int(labels[bad])} of sample {self.ids[bad]} is out of "
                    f"range [0, {k}); fix the label file or pass the full class list"
                )
            if not self.classes:
                object.__setattr__(self, "classes", tuple(str(i) for i in range(k)))
            object.__setattr__(self, "labels", labels)

    # --- shape -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def is_labelled(self) -> bool:
        return self.labels is not None

    def require_labels(self, what: str) -> np.ndarray:
        if self.labels is None:
            raise DataError(
                f"{what} needs labels but {self.name} is unlabelled; load a labelled split"
            )
        return self.labels

    def class_counts(self) -> np.ndarray:
        """``(num_classes,)`` number of samples per class."""
        return np.bincount(self.require_labels("class_counts"), minlength=self.num_classes)

    # --- selection -------------------------------------------------------------------------
    def indices_of(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Positions of ``ids``; refuses unknown ids by naming the first."""
        ids = np.asarray(ids).astype(str)
        order = np.argsort(self.ids, kind="stable")
        pos = np.searchsorted(self.ids, ids, sorter=order)
        pos = np.clip(pos, 0, len(self) - 1)
        found = order[pos]
        missing = self.ids[found] != ids
        if missing.any():
            raise DataError(
                f"{self.name}: {int(missing.sum())} id(s) not in the data set, e.g. "
                f"{str(ids[missing][0])!r}; the subset must come from this data set"
            )
        return found

    def take(self, indices: np.ndarray | Sequence[int], *, name: str | None = None) -> ImageDataset:
        """A new data set of the rows at ``indices`` (in that order); shares no mutable state."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(np.unique(idx)) != len(idx):
            raise DataError(f"{self.name}: a subset may not repeat a sample")
        return ImageDataset(
            images=read_rows(self.images, idx),
            labels=None if self.labels is None else self.labels[idx],
            ids=self.ids[idx],
            classes=self.classes,
            name=name or self.name,
            source=dict(self.source),
        )

    def subset(self, ids: Sequence[str] | np.ndarray, *, name: str | None = None) -> ImageDataset:
        """A new data set of the samples named by ``ids``."""
        return self.take(self.indices_of(ids), name=name)

    # --- identity --------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """sha256 over ids, labels, classes and pixels: equal iff the data are equal."""
        if self.known_fingerprint is not None:
            return self.known_fingerprint
        h = hashlib.sha256()
        h.update("\x00".join(self.ids.tolist()).encode())
        h.update("\x00".join(self.classes).encode())
        if self.labels is not None:
            h.update(self.labels.tobytes())
        h.update(str(self.images.shape).encode() + str(self.images.dtype).encode())
        # In chunks: the digest of the concatenated bytes, without a copy of the whole array
        # (a memory-mapped pixel cache may be larger than RAM).
        n = len(self)
        row_bytes = max(1, int(np.prod(self.images.shape[1:])) * self.images.itemsize)
        step = max(1, FINGERPRINT_CHUNK_BYTES // row_bytes)
        for start in range(0, n, step):
            h.update(read_rows(self.images, slice(start, start + step)).data)
        return h.hexdigest()
