"""``load_dataset``: one entry point for named data sets and paths."""

from __future__ import annotations

import os
from pathlib import Path

from thresher.data.cifar import load_cifar10, load_cifar100
from thresher.data.folder import is_archive, load_image_folder
from thresher.data.idx import has_idx_files, load_idx
from thresher.data.registry import DATASETS
from thresher.data.subset import limit_dataset
from thresher.data.types import ImageDataset
from thresher.errors import DataError, did_you_mean

DATA_ENV = "THRESHER_DATA"


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The data root: ``root``, else ``$THRESHER_DATA``; it must be an existing folder."""
    chosen = root if root is not None else os.environ.get(DATA_ENV)
    if not chosen:
        raise DataError(f"no data root: pass --root DIR or set {DATA_ENV}")
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataError(
            f"data root {path} does not exist or is not a folder; pass --root DIR or set "
            f"{DATA_ENV} to the folder holding the data sets"
        )
    return path


def load_dataset(
    name_or_path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    split: str | None = "train",
    verify: bool = True,
    limit: int | None = None,
    seed: int = 0,
) -> ImageDataset:
    """Load a named data set or a data set at a path.

    Parameters:
        name_or_path: a registered name (``mnist``, ``fashion-mnist``, ``cifar10``,
            ``cifar100``, ``digits``; see ``DATASETS``) or a path: a folder of IDX files, a
            ``cifar-10-batches-py``/``cifar-100-python`` folder, an image folder or a tar archive
            of one, or a detection set (a YOLO ``images/`` + ``labels/`` folder, or a COCO
            ``images/`` + ``annotations/instances_<split>.json`` folder). An exact registered name wins over a folder of that name (write ``./mnist``
            for the folder).
        root: the data root of named sets (default ``$THRESHER_DATA``). Under it: ``mnist/``,
            ``fashion-mnist/`` (IDX, gzipped or raw), ``cifar-10-batches-py/`` or else
            ``cifar10-jpeg/cifar10-jpeg.tar.gz``, ``cifar-100-python/``. ``digits`` needs none.
        split: ``"train"`` or ``"test"`` (``digits`` also ``"all"``; image folders any split
            folder name, or ``None`` for a ``class/*.ext`` folder; a folder without a split
            level loads whole for ``"train"``).
        verify: check known files against their published SHA-256.
        limit: keep a seeded stratified subset of this many samples: every class keeps its
            share ``limit * n_c / N`` (largest-remainder rounding, exactly ``limit`` in all),
            drawn with ``numpy.random.default_rng(seed)``, in source order; the same arguments
            always give the same ids.
        seed: seed of ``limit`` and of the digits train/test split.

    Returns:
        :class:`ImageDataset`.
    """
    text = os.fspath(name_or_path)
    if text in DATASETS:
        spec = DATASETS.get(text)
        if split not in spec.splits:
            raise DataError(f"{text} has no split {split!r}; use one of {', '.join(spec.splits)}")
        base = resolve_root(root) if spec.needs_root else None
        return spec.loader(base, split=split, verify=verify, limit=limit, seed=seed)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(
            f"{text!r} is neither a data set name{did_you_mean(text, DATASETS.names())} nor an "
            f"existing path (named sets: {', '.join(DATASETS.names())}); check the spelling "
            "or the path"
        )
    return _load_path(path, split=split, verify=verify, limit=limit, seed=seed)


def _load_path(
    path: Path, *, split: str | None, verify: bool, limit: int | None, seed: int
) -> ImageDataset:
    if path.is_file() and not is_archive(path):
        raise DataError(
            f"{path} is a file but not a tar archive; give a folder (IDX files, CIFAR batches, "
            "images) or a .tar.gz/.tgz/.tar of an image folder"
        )
    if path.is_dir() and has_idx_files(path):
        if split is None:
            raise DataError(f"{path}: IDX data need split='train' or split='test'")
        ds = load_idx(path, split=split, verify=verify)
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)
    if path.is_dir() and (path / "batches.meta").is_file():
        return load_cifar10(path, split=split or "train", limit=limit, seed=seed)
    if path.is_dir() and (path / "meta").is_file() and (path / "train").is_file():
        return load_cifar100(path, split=split or "train", limit=limit, seed=seed)
    from thresher.data.detection_io import is_coco_folder, is_yolo_folder, load_coco, load_yolo
    from thresher.data.hf import is_hf_folder, load_hf_dataset
    from thresher.data.pixels import is_pixel_cache, load_pixel_cache

    if path.is_dir() and (is_yolo_folder(path) or is_coco_folder(path)):
        read = load_yolo if is_yolo_folder(path) else load_coco
        ds = read(path, split=split or "train")
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)
    if is_pixel_cache(path):
        ds = load_pixel_cache(path)
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)
    if is_hf_folder(path):
        ds = load_hf_dataset(path, split=split)
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)
    return load_image_folder(path, split=split, limit=limit, seed=seed, flat_ok=split == "train")
