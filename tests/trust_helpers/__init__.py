"""Builders and checks shared by the trust tests (bad input, kills, fuzzing, determinism)."""

from __future__ import annotations

import builtins
import errno
import gzip
import hashlib
import io
import os
import pickle  # noqa: TID251 -- tests write synthetic CIFAR batches; loading uses CifarUnpickler
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")  # fmt: skip
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial")


# --- what changed ---------------------------------------------------------------------------
def tree_digest(root: Path) -> dict[str, str]:
    """``{relative path: sha256 of content}`` of every file and folder under ``root``.

    Folders map to ``"dir"`` and links to their target, so an added empty folder, a removed
    file or a changed byte all change the digest.
    """
    out: dict[str, str] = {}
    if not root.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath, d)
            out[p.relative_to(root).as_posix()] = "link" if p.is_symlink() else "dir"
        for f in filenames:
            p = Path(dirpath, f)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = f"link:{os.readlink(p)}"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def partial_files(root: Path) -> list[str]:
    """Leftover temporary files (``.tmp``/``.part``/``.partial``) under ``root``."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.name.endswith(PARTIAL_SUFFIXES) or ".partial" in p.name
    )


# --- IDX ------------------------------------------------------------------------------------
def idx_bytes(values: np.ndarray, *, magic: bytes | None = None) -> bytes:
    """``values`` (uint8) as an IDX file: magic, big-endian dims, then the bytes."""
    head = magic if magic is not None else bytes([0, 0, 0x08, values.ndim])
    return head + struct.pack(f">{values.ndim}I", *values.shape) + values.tobytes()


def write_idx_folder(
    folder: Path,
    *,
    n_images: int = 12,
    n_labels: int = 12,
    images: bytes | None = None,
    labels: bytes | None = None,
    compress: bool = True,
) -> Path:
    """An MNIST-style folder (train and t10k) of random 28x28 images; overrides are raw bytes."""
    rng = np.random.default_rng(0)
    img = (
        images
        if images is not None
        else idx_bytes(rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8))
    )
    lab = labels if labels is not None else idx_bytes(rng.integers(0, 10, n_labels, dtype=np.uint8))
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        for kind, blob in (("images-idx3", img), ("labels-idx1", lab)):
            name = f"{split}-{kind}-ubyte"
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
            else:
                (folder / name).write_bytes(blob)
    return folder


# --- CIFAR ----------------------------------------------------------------------------------
def cifar_batch(n: int, seed: int) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
        b"filenames": [f"img_{seed}_{i:03d}.png".encode() for i in range(n)],
    }


def pickle_bytes(obj: object, protocol: int = 2) -> bytes:
    return pickle.dumps(obj, protocol=protocol)


def write_cifar10_folder(folder: Path, *, n: int = 4, test_batch: bytes | None = None) -> Path:
    """A ``cifar-10-batches-py`` folder of ``n`` random images per batch."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle_bytes(cifar_batch(n, i)))
    blob = test_batch if test_batch is not None else pickle_bytes(cifar_batch(n, 9))
    (folder / "test_batch").write_bytes(blob)
    meta = {b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_cases_per_batch": n}
    (folder / "batches.meta").write_bytes(pickle_bytes(meta))
    return folder


# --- image folders --------------------------------------------------------------------------
def png_bytes(size: tuple[int, int] = (8, 8), *, seed: int = 0, fmt: str = "PNG") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def write_image_folder(
    folder: Path, *, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 3
) -> Path:
    """``train/<class>/<i>.png`` and ``test/<class>/<i>.png`` of 8x8 RGB images."""
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            d = folder / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (d / f"{i}.png").write_bytes(png_bytes(seed=100 * c + i))
    return folder


# --- failing file systems -------------------------------------------------------------------
def deny_writes_under(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Make ``root`` read-only for this process, also when tests run as root (chmod alone does
    not stop root): ``chmod 0555`` plus ``EACCES`` from every create/write call under it."""
    root.chmod(0o555)
    if os.geteuid() != 0:
        return
    base = str(root.resolve())

    def inside(path: object) -> bool:
        try:
            return str(Path(os.fsdecode(path)).resolve()).startswith(base)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False

    def denied(path: object) -> OSError:
        return PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))  # type: ignore[arg-type]

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(c in mode for c in "wax+") and inside(file):
            raise denied(file)
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    def fake_os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise denied(path)
        return real_os_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    def fake_mkdir(path: object, *args: object, **kwargs: object) -> None:
        if inside(path):
            raise denied(path)
        real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)


class _FillingFile:
    """A file that accepts half of the first write, then reports a full disk."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, data: Any) -> int:
        self._fh.write(data[: len(data) // 2])
        self._fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


def disk_full(monkeypatch: pytest.MonkeyPatch, *, where: str = "fsync") -> None:
    """Simulate a full disk in the atomic writer: ``where`` is ``"write"`` (the temporary file
    takes half the bytes, then ENOSPC), ``"fsync"`` or ``"replace"`` (the rename) raising ENOSPC."""
    from thresher.store import atomic

    def no_space(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def filling_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        return _FillingFile(builtins.open(file, mode, *args, **kwargs))

    if where == "write":
        monkeypatch.setattr(atomic, "open", filling_open, raising=False)
    elif where == "fsync":
        monkeypatch.setattr(atomic.os, "fsync", no_space)
    elif where == "replace":
        monkeypatch.setattr(atomic.os, "replace", no_space)
    else:
        raise ValueError(f"unknown failure point {where!r}")
