"""Hugging Face ``datasets`` on disk: a ``save_to_disk`` folder or a folder of Parquet files.

The image column is the one with the ``Image`` feature (or ``image_column``), the labels the
``ClassLabel`` column (its names are the classes; or ``label_column``). Images are read as their
encoded bytes and decoded by Thresher's decoder (same rules as an image folder: one size per
set). Ids come from an ``id`` column when there is one, else ``<split>/<row>``. Nothing is
downloaded: only local files are read (needs the ``hf`` extra: ``pip install 'thresher[hf]'``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from thresher.data.decode import decode_images
from thresher.data.types import ImageDataset
from thresher.errors import DataError

HF_HINT = "reading Hugging Face data sets needs the datasets package: pip install 'thresher[hf]'"


def is_hf_folder(path: str | os.PathLike[str]) -> bool:
    """A ``save_to_disk`` folder (``dataset_info.json``/``dataset_dict.json``) or a folder whose
    files are Parquet (``*.parquet``, directly or in ``data/``)."""
    p = Path(path)
    if not p.is_dir():
        return False
    if (p / "dataset_dict.json").is_file() or (p / "dataset_info.json").is_file():
        return True
    return bool(_parquet_files(p, None))


def _parquet_files(root: Path, split: str | None) -> list[Path]:
    files = sorted(root.glob("*.parquet")) + sorted(root.glob("data/*.parquet"))
    if split is None:
        return files
    # the Hub's naming: train-00000-of-00001.parquet, or a train/ folder
    named = [f for f in files if f.name.startswith(f"{split}-") or f.name == f"{split}.parquet"]
    return named or sorted((root / split).glob("*.parquet"))


def load_hf_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = "train",
    image_column: str | None = None,
    label_column: str | None = None,
) -> ImageDataset:
    """An :class:`ImageDataset` from a local Hugging Face data set (see the module docstring).

    Raises ``DataError`` for a missing split (naming those there are), no image column, a
    label column that is not a ``ClassLabel``/integers, or images that cannot be decoded.
    """
    try:
        import datasets
    except ImportError as err:
        raise DataError(HF_HINT) from err
    root = Path(path)
    ds = _open(datasets, root, split)
    features = ds.features
    image_name = image_column or next(
        (n for n, f in features.items() if isinstance(f, datasets.Image)), None
    )
    if image_name is None or image_name not in features:
        raise DataError(
            f"{root}: no image column (columns: {', '.join(features)}); give image_column= "
            "the column holding the images"
        )
    label_name = label_column or next(
        (n for n, f in features.items() if isinstance(f, datasets.ClassLabel)), None
    )
    classes: tuple[str, ...] = ()
    labels = None
    if label_name is not None:
        if label_name not in features:
            raise DataError(f"{root}: no column {label_name!r} (columns: {', '.join(features)})")
        feature = features[label_name]
        raw = np.asarray(ds[label_name])
        if isinstance(feature, datasets.ClassLabel):
            classes = tuple(feature.names)
        elif raw.dtype.kind not in "iu":
            raise DataError(
                f"{root}: label column {label_name!r} holds {raw.dtype}, not class indices; "
                "cast it to a ClassLabel"
            )
        else:
            classes = tuple(str(c) for c in range(int(raw.max()) + 1))
        labels = raw.astype(np.int64)
    if isinstance(features[image_name], datasets.Image):
        ds = ds.cast_column(image_name, datasets.Image(decode=False))
    cells = ds[image_name]
    blobs = [_blob(c, root) for c in cells]
    name = f"{root.name}/{split}" if split else root.name
    ids = (
        np.asarray([str(v) for v in ds["id"]])
        if "id" in features
        else np.asarray([f"{split or 'all'}/{k:06d}" for k in range(len(blobs))])
    )
    images, _ = decode_images(blobs, ids.tolist(), name=name)
    return ImageDataset(
        images=images,
        labels=labels,
        ids=ids,
        classes=classes,
        name=name,
        source={"format": "hf-datasets", "path": str(root), "split": split},
    )


def _open(datasets: Any, root: Path, split: str | None) -> Any:
    if (root / "dataset_dict.json").is_file():
        whole = datasets.load_from_disk(str(root))
        if split not in whole:
            raise DataError(f"{root} has no split {split!r}; it has {', '.join(whole)}")
        return whole[split]
    if (root / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(root))
    files = _parquet_files(root, split) or _parquet_files(root, None)
    if not files:
        raise DataError(f"{root} holds no Parquet files and no save_to_disk data set")
    if split not in (None, "train") and not _parquet_files(root, split):
        raise DataError(f"{root} has no Parquet files for split {split!r}")
    with tempfile.TemporaryDirectory() as cache:  # nothing left in ~/.cache
        return datasets.Dataset.from_parquet(
            [str(f) for f in files], cache_dir=cache, keep_in_memory=True
        )


def _blob(cell: Any, root: Path) -> bytes:
    if isinstance(cell, dict) and cell.get("bytes"):
        return bytes(cell["bytes"])
    if isinstance(cell, dict) and cell.get("path"):
        path = Path(cell["path"])
        return (path if path.is_absolute() else root / path).read_bytes()
    raise DataError(f"an image cell holds neither bytes nor a path: {str(cell)[:80]}")
