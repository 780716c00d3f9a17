"""IDX files (MNIST, Fashion-MNIST): gzipped or raw, header-checked and checksum-verified.

The IDX format: two zero bytes, a dtype code, the number of dimensions, one big-endian uint32
per dimension, then the values in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from thresher.data.checksums import IDX_SHA256, check_digest, identify_idx, sha256_bytes
from thresher.data.types import ImageDataset
from thresher.errors import DataError

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX dtype code -> numpy dtype."""

MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IDX_CLASSES: dict[str, tuple[str, ...]] = {
    "mnist": MNIST_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
}
SPLIT_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}
"""Split name -> file-name prefix of the original distribution."""

_GZIP_MAGIC = b"\x1f\x8b"
# numpy arrays have at most 64 dimensions; a header claiming more is damage, not data
MAX_IDX_DIMS = 32


def read_idx_bytes(path: str | os.PathLike[str]) -> bytes:
    """The decompressed content of an IDX file (gzip detected by its magic bytes, not its name)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {p}: {err.strerror or err}; check the path") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{p} is truncated or corrupt ({err}); delete it and download it again "
            "(thresher data fetch)"
        ) from err


def parse_idx(data: bytes, *, path: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX content into an array of its declared shape and dtype.

    Returns:
        array of shape ``dims`` (e.g. ``(N, 28, 28)`` for images, ``(N,)`` for labels), native
        byte order, writable.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        magic = data[:4].hex() if data else "empty"
        raise DataError(
            f"{path} is not an IDX file (magic number 0x{magic}); expected e.g. 0x00000803 for "
            "images and 0x00000801 for labels: check that this is an MNIST-style file"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or ndim > MAX_IDX_DIMS or len(data) < header:
        raise DataError(
            f"{path} is truncated or corrupt (header cut short); delete it and download it again"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else f"{len(data) - expected} bytes too long"
        raise DataError(
            f"{path} is {problem} or corrupt: header says {dims} ({expected} bytes) but the file "
            f"has {len(data)} bytes; delete it and download it again (thresher data fetch)"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="), copy=True)


def read_idx(
    path: str | os.PathLike[str], *, expected_sha256: str | None = None
) -> tuple[np.ndarray, str]:
    """Read one IDX file, optionally verifying the SHA-256 of its decompressed content.

    Returns:
        ``(values, sha256)``: the parsed array and the digest of the decompressed bytes.

    Raises:
        DataError: wrong magic number, truncated or corrupt file.
        ChecksumError: ``expected_sha256`` given and different.
    """
    data = read_idx_bytes(path)
    values = parse_idx(data, path=path)
    digest = sha256_bytes(data)
    if expected_sha256 is not None:
        check_digest(path, expected=expected_sha256, actual=digest)
    return values, digest


def find_idx_file(folder: str | os.PathLike[str], stem: str) -> Path:
    """The file for ``stem`` (e.g. ``train-images-idx3-ubyte``) in ``folder``: raw, ``.gz``, or
    the dotted variant (``train-images.idx3-ubyte``) some mirrors use."""
    d = Path(folder)
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (d / name).is_file():
            return d / name
    raise DataError(
        f"{d / stem}[.gz] not found; put the IDX files there or run "
        f"`thresher data fetch mnist --root DIR` (or fashion-mnist)"
    )


def has_idx_files(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds MNIST-style IDX files."""
    d = Path(folder)
    return d.is_dir() and any(
        "idx3-ubyte" in p.name or "idx1-ubyte" in p.name for p in d.iterdir() if p.is_file()
    )


def idx_ids(prefix: str, n: int) -> np.ndarray:
    """``prefix/00000`` ... : the index within the split, zero-padded to at least 5 digits."""
    width = max(5, len(str(max(n - 1, 0))))
    return np.array([f"{prefix}/{i:0{width}d}" for i in range(n)])


def load_idx(
    folder: str | os.PathLike[str],
    *,
    split: str = "train",
    dataset: str | None = None,
    verify: bool = True,
    classes: tuple[str, ...] | None = None,
) -> ImageDataset:
    """Load one split of an MNIST-style IDX data set from ``folder``.

    Parameters:
        folder: directory holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.
        split: ``"train"`` or ``"test"``.
        dataset: ``"mnist"``, ``"fashion-mnist"`` or ``None`` to recognise the files by their
            checksum or the folder name (other IDX data load unverified with classes "0".."K-1").
        verify: check the SHA-256 of known files against the published digests.
        classes: class names, overriding the known ones.

    Returns:
        :class:`ImageDataset` with ``images (N, 1, H, W) uint8``, ``labels (N,) int64``, ids
        ``"<dataset>/<split>/00042"``.
    """
    d = Path(folder)
    if split not in SPLIT_PREFIX:
        raise DataError(f"unknown IDX split {split!r}; use one of {', '.join(SPLIT_PREFIX)}")
    prefix = SPLIT_PREFIX[split]
    image_file = find_idx_file(d, f"{prefix}-images-idx3-ubyte")
    label_file = find_idx_file(d, f"{prefix}-labels-idx1-ubyte")
    images, image_digest = read_idx(image_file)
    labels, label_digest = read_idx(label_file)

    if dataset is None:
        if d.name in IDX_CLASSES:
            dataset = d.name
        else:
            known = identify_idx(image_digest)
            dataset = known[0] if known else None
    verified = False
    if dataset in IDX_CLASSES and verify:
        for path, digest, kind in (
            (image_file, image_digest, "images"),
            (label_file, label_digest, "labels"),
        ):
            key = (dataset, f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte")
            check_digest(path, expected=IDX_SHA256[key], actual=digest)
        verified = True

    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{image_file}: expected (N, H, W) uint8 images, got {images.shape} {images.dtype}; "
            "is this an image file?"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{label_file}: expected (N,) integer labels, got {labels.shape} {labels.dtype}; "
            "is this a label file?"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels; "
            "the two files must come from the same split and release"
        )
    name = dataset or d.name or "idx"
    known_classes = classes or IDX_CLASSES.get(dataset or "", ())
    return ImageDataset(
        images=images[:, None],
        labels=labels.astype(np.int64),
        ids=idx_ids(f"{name}/{split}", len(images)),
        classes=tuple(known_classes),
        name=f"{name}/{split}",
        source={
            "format": "idx",
            "dataset": name,
            "split": split,
            "files": {
                "images": {"path": str(image_file), "sha256": image_digest},
                "labels": {"path": str(label_file), "sha256": label_digest},
            },
            "verified": verified,
        },
    )
