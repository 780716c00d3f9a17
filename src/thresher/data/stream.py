"""Unlabelled data that arrive as a stream of ``(batch, ids)`` pairs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from thresher.data.arrays import normalise_pixels
from thresher.data.types import ImageDataset
from thresher.errors import DataError

BatchSource = Iterable[tuple[Any, Any]] | Callable[[], Iterable[tuple[Any, Any]]]


class BatchStream:
    """A re-iterable, validated stream of unlabelled ``(images, ids)`` batches.

    Each batch is ``(B, C, H, W)`` (uint8, integers in [0, 255], or floats in [0, 1]; numpy
    arrays or CPU tensors) with ``B`` unique string ids. All batches must share ``C, H, W``
    and a dtype kind, and an id may not repeat anywhere in one pass.

    Parameters:
        source: a re-iterable of ``(batch, ids)`` (e.g. a list), or a zero-argument callable
            returning a fresh iterable for every pass (for generators and data loaders).
        name: data set name used in messages and by :meth:`to_dataset`.

    Iterating yields ``(images, ids)`` with ``images`` ``(B, C, H, W)`` uint8 or float32 and
    ``ids`` ``(B,)`` str.
    """

    def __init__(self, source: BatchSource, *, name: str = "stream") -> None:
        self.source = source
        self.name = name
        self._used_iterator: object | None = None

    def _fresh(self) -> Iterator[tuple[Any, Any]]:
        iterable = self.source() if callable(self.source) else self.source
        iterator = iter(iterable)
        if iterator is iterable and self._used_iterator is iterator:
            raise DataError(
                f"{self.name}: the stream was already consumed (a one-shot iterator); pass a "
                "callable that returns a fresh iterator, e.g. from_batches(lambda: make_batches())"
            )
        if iterator is iterable:
            self._used_iterator = iterator
        return iterator

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        seen: set[str] = set()
        shape: tuple[int, ...] | None = None
        dtype: np.dtype[Any] | None = None
        for k, item in enumerate(self._fresh()):
            where = f"{self.name} batch {k}"
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise DataError(
                    f"{where}: expected a (images, ids) pair, got {type(item).__name__}"
                )
            batch, ids = item
            if type(batch).__module__.startswith("torch"):
                batch = batch.detach().cpu().numpy()
            arr = np.asarray(batch)
            if arr.ndim != 4:
                raise DataError(
                    f"{where}: images must be 4-D (B, C, H, W), got shape {arr.shape}; add the "
                    "batch/channel axes (x[None] or x[:, None])"
                )
            arr = normalise_pixels(arr, scale=None, name=where)
            id_arr = np.asarray(ids).astype(str)
            if id_arr.shape != (arr.shape[0],):
                raise DataError(
                    f"{where}: {arr.shape[0]} images but {id_arr.size} ids; give one id per image"
                )
            if shape is None:
                shape, dtype = arr.shape[1:], arr.dtype
            elif arr.shape[1:] != shape or arr.dtype != dtype:
                raise DataError(
                    f"{where}: images are {arr.shape[1:]} {arr.dtype} but batch 0 was {shape} "
                    f"{dtype}; every batch must have one image shape and dtype"
                )
            id_list = id_arr.tolist()
            fresh = set(id_list)
            if len(fresh) != len(id_list) or not seen.isdisjoint(fresh):
                dup, local = id_list[0], set()
                for sample_id in id_list:
                    if sample_id in seen or sample_id in local:
                        dup = sample_id
                        break
                    local.add(sample_id)
                raise DataError(
                    f"{where}: id {dup!r} occurs twice in the stream; ids must name one sample each"
                )
            seen |= fresh
            yield arr, id_arr

    def to_dataset(self) -> ImageDataset:
        """Materialise one pass as an unlabelled :class:`ImageDataset` (labels ``None``)."""
        batches, ids = [], []
        for arr, id_arr in self:
            batches.append(arr)
            ids.append(id_arr)
        if not batches:
            raise DataError(f"{self.name}: the stream yielded no batches; check its source")
        return ImageDataset(
            images=np.concatenate(batches),
            labels=None,
            ids=np.concatenate(ids),
            name=self.name,
            source={"format": "batch-stream", "batches": len(batches)},
        )


def from_batches(source: BatchSource, *, name: str = "stream") -> BatchStream:
    """Wrap an iterable (or a callable returning one) of unlabelled ``(images, ids)`` batches.

    See :class:`BatchStream`; ``from_batches(...).to_dataset()`` materialises it.
    """
    return BatchStream(source, name=name)
