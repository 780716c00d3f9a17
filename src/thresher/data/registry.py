"""The named data sets: where each lives under the data root and how it loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from thresher.data.arrays import load_digits
from thresher.data.cifar import load_cifar10, load_cifar100
from thresher.data.folder import load_image_folder
from thresher.data.idx import find_idx_file, load_idx
from thresher.data.subset import limit_dataset
from thresher.data.types import ImageDataset
from thresher.errors import DataError
from thresher.registry import Registry

Loader = Callable[..., ImageDataset]
"""``loader(root: Path | None, *, split, verify, limit, seed) -> ImageDataset``."""


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: what it is and how to load it from a data root."""

    name: str
    description: str
    splits: tuple[str, ...]
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    loader: Loader
    needs_root: bool = True
    fetchable: bool = True


DATASETS: Registry[DatasetSpec] = Registry("data set", error=DataError)


def missing(path: Path, name: str) -> DataError:
    return DataError(
        f"{name} not found at {path}; run `thresher data fetch {name} --root DIR` "
        "or point --root at the folder that holds it"
    )


def _idx_folder(root: Path, name: str, torchvision_name: str) -> Path:
    for folder in (root / name, root / torchvision_name / "raw"):
        try:
            find_idx_file(folder, "train-images-idx3-ubyte")
        except DataError:
            continue
        return folder
    raise missing(root / name, name)


def _load_idx_set(name: str, torchvision_name: str) -> Loader:
    def load(root: Path, *, split: str, verify: bool, limit: int | None, seed: int) -> ImageDataset:
        folder = _idx_folder(root, name, torchvision_name)
        ds = load_idx(folder, split=split, dataset=name, verify=verify)
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)

    return load


def _load_cifar10(
    root: Path, *, split: str, verify: bool, limit: int | None, seed: int
) -> ImageDataset:
    batches = root / "cifar-10-batches-py"
    if batches.is_dir():
        return load_cifar10(batches, split=split, limit=limit, seed=seed)
    archive = root / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if archive.is_file():
        return load_image_folder(archive, split=split, name="cifar10", limit=limit, seed=seed)
    raise DataError(
        f"cifar10 not found at {batches} nor {archive}; run `thresher data fetch cifar10 "
        "--root DIR` or point --root at the folder that holds it"
    )


def _load_cifar100(
    root: Path, *, split: str, verify: bool, limit: int | None, seed: int
) -> ImageDataset:
    folder = root / "cifar-100-python"
    if not folder.is_dir():
        raise missing(folder, "cifar100")
    return load_cifar100(folder, split=split, limit=limit, seed=seed)


def _load_digits(
    root: Path | None, *, split: str, verify: bool, limit: int | None, seed: int
) -> ImageDataset:
    return load_digits(split=split, seed=seed, limit=limit)


DATASETS.register(
    "mnist",
    DatasetSpec(
        name="mnist",
        description="MNIST handwritten digits, 60,000 train + 10,000 test, 28x28 grey",
        splits=("train", "test"),
        num_classes=10,
        image_shape=(1, 28, 28),
        loader=_load_idx_set("mnist", "MNIST"),
    ),
)
DATASETS.register(
    "fashion-mnist",
    DatasetSpec(
        name="fashion-mnist",
        description="Fashion-MNIST clothing, 60,000 train + 10,000 test, 28x28 grey",
        splits=("train", "test"),
        num_classes=10,
        image_shape=(1, 28, 28),
        loader=_load_idx_set("fashion-mnist", "FashionMNIST"),
    ),
)
DATASETS.register(
    "cifar10",
    DatasetSpec(
        name="cifar10",
        description="CIFAR-10, 50,000 train + 10,000 test, 32x32 RGB (python batches or the "
        "JPEG image-folder copy)",
        splits=("train", "test"),
        num_classes=10,
        image_shape=(3, 32, 32),
        loader=_load_cifar10,
    ),
)
DATASETS.register(
    "cifar100",
    DatasetSpec(
        name="cifar100",
        description="CIFAR-100 (fine labels), 50,000 train + 10,000 test, 32x32 RGB",
        splits=("train", "test"),
        num_classes=100,
        image_shape=(3, 32, 32),
        loader=_load_cifar100,
    ),
)
# Detection sets built from the real digits (issue 19): canvases of 1-3 objects with tight
# boxes, the same canvases on every machine (generation seed fixed per split; --limit draws from
# them with the run's seed).
DETECTION_SIZES = {"train": 2000, "test": 500}


def _load_canvases(name: str, torchvision_name: str) -> Loader:
    def load(root: Path, *, split: str, verify: bool, limit: int | None, seed: int) -> ImageDataset:
        from thresher.data.detection import make_canvases

        folder = _idx_folder(root, name, torchvision_name)
        digits = load_idx(folder, split=split, dataset=name, verify=verify)
        ds = make_canvases(
            digits,
            count=DETECTION_SIZES[split],
            seed=1 if split == "train" else 2,
            name=f"{name}-detection/{split}",
        )
        return ds if limit is None else limit_dataset(ds, limit=limit, seed=seed)

    return load


for _name, _tv, _what in (
    ("mnist", "MNIST", "digits"),
    ("fashion-mnist", "FashionMNIST", "clothes"),
):
    DATASETS.register(
        f"{_name}-detection",
        DatasetSpec(
            name=f"{_name}-detection",
            description=f"object detection: 64x64 canvases of 1-3 real {_name} {_what} with "
            f"tight boxes, {DETECTION_SIZES['train']:,} train + {DETECTION_SIZES['test']} test "
            "(built from the IDX files)",
            splits=("train", "test"),
            num_classes=10,
            image_shape=(1, 64, 64),
            loader=_load_canvases(_name, _tv),
            fetchable=False,
        ),
    )

DATASETS.register(
    "digits",
    DatasetSpec(
        name="digits",
        description="scikit-learn's 1,797 8x8 digits (seeded stratified 80/20 train/test split)",
        splits=("train", "test", "all"),
        num_classes=10,
        image_shape=(1, 8, 8),
        loader=_load_digits,
        needs_root=False,
        fetchable=False,
    ),
)
