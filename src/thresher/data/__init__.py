"""Data sources: every sample has a stable id; the user's files are never modified."""

from thresher.data.arrays import from_arrays, load_digits
from thresher.data.cifar import CifarUnpickler, load_cifar10, load_cifar100, read_batch
from thresher.data.fetch import SOURCES, FetchResult, RemoteFile, fetch
from thresher.data.folder import load_image_folder
from thresher.data.idx import (
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    load_idx,
    parse_idx,
    read_idx,
)
from thresher.data.info import dataset_info
from thresher.data.load import load_dataset, resolve_root
from thresher.data.longtail import long_tailed_counts, make_long_tailed
from thresher.data.registry import DATASETS, DatasetSpec
from thresher.data.stream import BatchStream, from_batches
from thresher.data.subset import limit_dataset, stratified_indices, stratified_split
from thresher.data.torchds import from_torch_dataset
from thresher.data.types import ImageDataset

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "SOURCES",
    "BatchStream",
    "CifarUnpickler",
    "DatasetSpec",
    "FetchResult",
    "ImageDataset",
    "RemoteFile",
    "dataset_info",
    "fetch",
    "from_arrays",
    "from_batches",
    "from_torch_dataset",
    "limit_dataset",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_idx",
    "load_image_folder",
    "long_tailed_counts",
    "make_long_tailed",
    "parse_idx",
    "read_batch",
    "read_idx",
    "resolve_root",
    "stratified_indices",
    "stratified_split",
]
