"""Published checksums of the canonical data files, and the hashing helpers that check them.

IDX digests are SHA-256 of the *decompressed* files, so a raw copy and a gzipped copy verify
alike. The CIFAR tarballs only have a publicly known MD5 (from the CIFAR page and torchvision).
"""

from __future__ import annotations

import hashlib
import os

from thresher.errors import ChecksumError

IDX_SHA256: dict[tuple[str, str], str] = {
    ("mnist", "train-images-idx3-ubyte"): (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    ("mnist", "train-labels-idx1-ubyte"): (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    ("mnist", "t10k-images-idx3-ubyte"): (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    ("mnist", "t10k-labels-idx1-ubyte"): (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
    ("fashion-mnist", "train-images-idx3-ubyte"): (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    ("fashion-mnist", "train-labels-idx1-ubyte"): (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    ("fashion-mnist", "t10k-images-idx3-ubyte"): (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}
"""``(data set, decompressed file name) -> SHA-256`` of the eight original IDX files."""

ARCHIVE_MD5: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}
"""``archive file name -> MD5`` of the CIFAR python-format tarballs."""


def sha256_bytes(data: bytes | bytearray | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | os.PathLike[str], *, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def identify_idx(digest: str) -> tuple[str, str] | None:
    """``(data set, file name)`` of a known IDX file with this SHA-256, else ``None``."""
    for key, known in IDX_SHA256.items():
        if known == digest:
            return key
    return None


def check_digest(
    path: str | os.PathLike[str], *, expected: str, actual: str, what: str = "SHA-256"
) -> None:
    """Raise :class:`ChecksumError` naming the file when ``actual != expected``."""
    if actual != expected:
        raise ChecksumError(
            f"{path}: {what} mismatch (expected {expected}, got {actual}); the file is corrupt "
            "or a different version: delete it and download it again (thresher data fetch)"
        )
