"""CIFAR-10 / CIFAR-100 python batches, read with an unpickler that only builds arrays.

The batches are Python pickles of dicts of numpy arrays, lists, ints and bytes. A pickle can
run arbitrary code through the globals it names, so :class:`CifarUnpickler` admits only the
numpy functions that rebuild an array and refuses everything else before it is called.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle  # noqa: TID251 -- only through CifarUnpickler, which admits numpy arrays alone
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thresher.data.checksums import file_digest
from thresher.data.subset import stratified_indices
from thresher.data.types import ImageDataset
from thresher.errors import DataError

try:  # numpy >= 2 renamed numpy.core to numpy._core (the old name warns on access)
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_module}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_module}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer  # type: ignore[attr-defined]
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype
_ALLOWED[("_codecs", "encode")] = codecs.encode  # bytes in protocol-2 pickles written by py3


class CifarUnpickler(pickle.Unpickler):
    """Unpickle numpy arrays, dicts, lists, numbers and bytes; refuse any other global."""

    def __init__(self, file: io.BufferedIOBase, *, path: str | os.PathLike[str]) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to unpickle {module}.{name} from {self._path}: CIFAR batches contain "
                "only arrays and lists; this file is not a CIFAR batch (use the official one)"
            ) from None


def read_batch(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One CIFAR batch file as a dict with ``str`` keys (the file's keys are bytes)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"{p} not found; run `thresher data fetch cifar10 --root DIR` (or cifar100)"
        )
    try:
        with open(p, "rb") as fh:
            obj = CifarUnpickler(fh, path=p).load()
    except DataError:
        raise
    except Exception as err:  # any failure to parse untrusted bytes means a damaged file
        raise DataError(
            f"{p} is truncated or corrupt ({type(err).__name__}: {err}); delete it and download "
            "it again (thresher data fetch)"
        ) from err
    if not isinstance(obj, dict):
        raise DataError(f"{p}: expected a dict of arrays, got {type(obj).__name__}; not a batch")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _strings(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _names(values: Any, key: str, path: Path) -> list[str]:
    """A list of names (class names, file names); anything else is a damaged file."""
    try:
        if isinstance(values, str | bytes) or np.ndim(values) != 1:
            raise TypeError(f"not a list but {type(values).__name__}")
        return _strings(values)
    except (TypeError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise DataError(
            f"{path}: {key!r} should be a list of names ({err}); the file is corrupt or not a "
            "CIFAR batch: download it again"
        ) from None


def _field(batch: dict[str, Any], key: str, path: Path) -> Any:
    if key not in batch:
        raise DataError(
            f"{path}: no {key!r} entry (has {', '.join(sorted(batch))}); not a CIFAR batch of "
            "the expected kind"
        )
    return batch[key]


def _images(batch: dict[str, Any], path: Path) -> np.ndarray:
    try:
        data = np.asarray(_field(batch, "data", path))
    except ValueError:  # ragged nested lists cannot form one array
        data = np.empty(0, dtype=object)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"{path}: 'data' should be (N, 3072) uint8, got {data.shape} {data.dtype}; "
            "the file is corrupt or not a CIFAR batch"
        )
    return data.reshape(-1, 3, 32, 32)


def _labels(batch: dict[str, Any], key: str, path: Path) -> np.ndarray:
    """The label entry as integers; anything else (floats, strings, None) is a damaged file."""
    try:
        labels = np.asarray(_field(batch, key, path))
    except ValueError:  # ragged nested lists
        labels = np.empty(0, dtype=object)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: {key!r} should hold integer class indices, got {labels.dtype}; "
            "the file is corrupt or not a CIFAR batch: download it again"
        )
    return labels


CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR100_FILES = {"train": ["train"], "test": ["test"]}


def _assemble(
    *,
    dataset: str,
    split: str,
    files: list[Path],
    label_key: str,
    classes: tuple[str, ...],
    limit: int | None,
    seed: int,
) -> ImageDataset:
    images, labels, filenames = [], [], []
    for path in files:
        batch = read_batch(path)
        batch_images = _images(batch, path)
        batch_labels = _labels(batch, label_key, path)
        if batch_labels.shape != (len(batch_images),):
            raise DataError(
                f"{path}: {len(batch_images)} images but {label_key} of shape {batch_labels.shape}; "
                "the file is corrupt: download it again"
            )
        images.append(batch_images)
        labels.append(batch_labels.astype(np.int64))
        names = batch.get("filenames")
        filenames.append(_names(names, "filenames", path) if names is not None else None)
    all_images = np.concatenate(images)
    all_labels = np.concatenate(labels)
    n = len(all_images)
    width = max(5, len(str(n - 1)))
    ids = [f"{dataset}/{split}/{i:0{width}d}" for i in range(n)]
    id_kind = "index"
    if all(f is not None and len(f) == len(im) for f, im in zip(filenames, images, strict=True)):
        named = [f"{dataset}/{split}/{name}" for part in filenames for name in part or []]
        if len(set(named)) == n:  # filenames are the natural id, when they are unique
            ids, id_kind = named, "filename"
    keep = np.arange(n)
    if limit is not None:
        keep = stratified_indices(all_labels, n, limit=limit, seed=seed)
    source: dict[str, Any] = {
        "format": "cifar-python",
        "dataset": dataset,
        "split": split,
        "labels": label_key,
        "ids": id_kind,
        "files": [{"path": str(p), "sha256": file_digest(p)} for p in files],
    }
    if limit is not None:
        source["limit"] = {"limit": limit, "seed": seed}
    return ImageDataset(
        images=np.ascontiguousarray(all_images[keep]),
        labels=all_labels[keep],
        ids=np.array(ids)[keep],
        classes=classes,
        name=f"{dataset}/{split}",
        source=source,
    )


def _split_files(folder: Path, table: dict[str, list[str]], split: str) -> list[Path]:
    if split not in table:
        raise DataError(f"unknown CIFAR split {split!r}; use one of {', '.join(table)}")
    if not folder.is_dir():
        raise DataError(
            f"{folder} not found; run `thresher data fetch "
            f"{'cifar100' if table is CIFAR100_FILES else 'cifar10'} --root DIR`"
        )
    return [folder / f for f in table[split]]


def load_cifar10(
    folder: str | os.PathLike[str],
    *,
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load CIFAR-10 from ``cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``,
    ``batches.meta``).

    Returns:
        :class:`ImageDataset` with ``images (N, 3, 32, 32) uint8`` (50,000 train / 10,000 test),
        ids ``cifar10/<split>/<filename>`` (``cifar10/<split>/<index>`` without filenames).
    """
    d = Path(folder)
    files = _split_files(d, CIFAR10_FILES, split)
    meta = read_batch(d / "batches.meta")
    classes = tuple(
        _names(_field(meta, "label_names", d / "batches.meta"), "label_names", d / "batches.meta")
    )
    return _assemble(
        dataset="cifar10",
        split=split,
        files=files,
        label_key="labels",
        classes=classes,
        limit=limit,
        seed=seed,
    )


def load_cifar100(
    folder: str | os.PathLike[str],
    *,
    split: str = "train",
    coarse: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load CIFAR-100 from ``cifar-100-python`` (``train``, ``test``, ``meta``).

    Parameters:
        coarse: use the 20 superclass labels instead of the 100 fine labels.

    Returns:
        :class:`ImageDataset` with ``images (N, 3, 32, 32) uint8``, 100 (or 20) classes.
    """
    d = Path(folder)
    files = _split_files(d, CIFAR100_FILES, split)
    meta = read_batch(d / "meta")
    kind = "coarse" if coarse else "fine"
    key = f"{kind}_label_names"
    classes = tuple(_names(_field(meta, key, d / "meta"), key, d / "meta"))
    return _assemble(
        dataset="cifar100",
        split=split,
        files=files,
        label_key=f"{kind}_labels",
        classes=classes,
        limit=limit,
        seed=seed,
    )
