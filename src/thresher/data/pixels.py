"""A memory-mapped pixel cache: an image folder decoded once, at one size, channel-first.

``load_image_folder`` reads every file into memory and decodes the whole set into one array:
fine for CIFAR-10, impossible for 200,000 photos (a 28 GiB allocation at 224 px). The pixel
cache decodes the folder once into ``images.npy`` (``(N, C, S, S)`` uint8, written through a
memory map, so resident memory stays at a few chunks), in parallel (Pillow releases the GIL
while it decodes and resizes; JPEGs are decoded at a reduced DCT scale when that is still at
least ``S``), chunk by chunk, resumable: a killed build keeps its finished chunks and the next
call decodes only the rest, to the same bytes. Reading it back memory-maps the file: training
and embedding gather their batches from the map.

Layout of a cache folder::

    plan.json     what is being built (files, size, policy); a different plan starts over
    images.npy    (N, C, S, S) uint8
    done.txt      indices of finished chunks, one per line, appended after each chunk's flush
    bad.json      files that could not be decoded (id -> error), once the decode has ended
    meta.json     written last: the cache is complete (ids, labels, classes, fingerprint)
    ids.npy, labels.npy, files.npy

Mixed sizes are resized by ``resize``: ``"shorter-crop"`` (shorter side to ``S``, then the
centre ``S x S``; the usual evaluation transform), ``"stretch"`` (to ``S x S``, aspect lost), or
``"none"`` (every image must be ``S x S`` already).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from thresher.data.decode import DECODE_ERRORS
from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError

PIXELS_FORMAT = "thresher-pixels"
PIXELS_VERSION = 1
RESIZE_POLICIES = ("shorter-crop", "stretch", "none")
ON_ERROR = ("refuse", "skip")
CHUNK = 512
PROBE = 64  # files looked at to decide grey (1 channel) or colour (3)
LISTED_BAD = 5


@dataclass(frozen=True)
class FolderScan:
    """An image folder's files, ids, labels and classes: scanned, nothing decoded.

    Attributes:
        root: the folder.
        files: ``(N,)`` paths relative to ``root``, in id order.
        ids: ``(N,)`` sample ids (the path below the split level, as ``load_image_folder``).
        labels: ``(N,)`` int64 class indices.
        classes: class names, index = label.
        split: the split folder, or ``None`` for a ``class/*`` folder.
    """

    root: Path
    files: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    split: str | None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def where(self) -> str:
        return str(self.root)

    def read(self, i: int, *, size: int, channels: int, resize: str) -> np.ndarray:
        return decode_file(self.root / self.files[i], size=size, channels=channels, resize=resize)

    def probe_channels(self) -> int:
        from thresher.data.decode import GREY_MODES

        for rel in self.files[:PROBE]:
            try:
                with Image.open(self.root / rel) as im:
                    if im.mode not in GREY_MODES:
                        return 3
            except (OSError, ValueError, SyntaxError):
                continue  # a bad file is reported by the decode
        return 1


@dataclass(frozen=True)
class ImageGetter:
    """Images from a user's ``get_image(arg)`` (the thesis's ``FilterableInterface``): channels-
    last RGB or grey arrays, one per sample, fetched when the cache is built.

    Attributes:
        ids, labels, classes: as for :class:`FolderScan` (labels may be ``None``).
        args: ``(N,)`` what ``get_image`` is called with for each sample (its metadata).
        get_image: ``arg -> (H, W[, C])`` uint8 array (or a PIL image).
    """

    ids: np.ndarray
    labels: np.ndarray | None
    classes: tuple[str, ...]
    args: list[Any]
    get_image: Callable[[Any], Any]
    split: str | None = None
    root: None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def where(self) -> str:
        return "get_image"

    @property
    def files(self) -> np.ndarray:
        return self.ids

    def read(self, i: int, *, size: int, channels: int, resize: str) -> np.ndarray:
        try:
            got = self.get_image(self.args[i])
            im = got if isinstance(got, Image.Image) else Image.fromarray(np.asarray(got))
        except Exception as err:  # the user's code: whatever it raises names this sample
            raise DataError(f"get_image failed: {type(err).__name__}: {err}") from err
        return fit_image(im, size=size, channels=channels, resize=resize, where=str(self.ids[i]))

    def probe_channels(self) -> int:
        for arg in self.args[:PROBE]:
            try:
                got = self.get_image(arg)
            except Exception:
                continue
            grey = got.mode in ("1", "L") if isinstance(got, Image.Image) else np.ndim(got) == 2
            if not grey:
                return 3
        return 1


PixelSource = FolderScan | ImageGetter


def scan_folder(path: str | os.PathLike[str], *, split: str | None = "train") -> FolderScan:
    """List the images of ``split`` (``split/class/*``; a folder without split level is
    taken whole for ``"train"``) without reading them. Archives are refused: extract first."""
    from thresher.data.folder import _scan_directory, has_split_level, is_archive, plan_layout

    root = Path(path).expanduser()
    if is_archive(root):
        raise DataError(
            f"{root} is an archive; a pixel cache reads a folder: extract it first "
            "(tar -xf), or load it whole with load_dataset"
        )
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; check the path")
    paths = _scan_directory(root)
    if split == "train" and not has_split_level(paths):
        split = None
    layout = plan_layout(root, paths, split=split)
    index = {c: k for k, c in enumerate(layout.classes)}
    return FolderScan(
        root=root.resolve(),
        files=np.asarray(layout.rel_paths),
        ids=np.asarray(layout.ids),
        labels=np.asarray([index[c] for c in layout.class_dirs], dtype=np.int64),
        classes=layout.classes,
        split=split,
    )


@dataclass(frozen=True)
class PixelCacheReport:
    """What :func:`build_pixel_cache` did."""

    path: str
    images: int
    size: int
    channels: int
    decoded: int  # this call (a resumed build decodes only what was missing)
    resumed_chunks: int
    skipped: dict[str, str]
    seconds: float


def build_pixel_cache(
    scan: PixelSource,
    out: str | os.PathLike[str],
    *,
    size: int,
    resize: str = "shorter-crop",
    channels: int | None = None,
    on_error: str = "refuse",
    workers: int | None = None,
    chunk: int = CHUNK,
    after_chunk: Callable[[int], None] | None = None,
) -> PixelCacheReport:
    """Decode ``scan``'s images into the cache folder ``out`` (resuming a stopped build).

    Parameters
    ----------
    size : side ``S`` of the stored square images.
    resize : ``"shorter-crop"``, ``"stretch"`` or ``"none"`` (see the module docstring).
    channels : 1 (grey) or 3 (RGB); ``None`` looks at the first files: all grey -> 1, else 3.
    on_error : ``"refuse"``: after the whole decode, one error naming every unreadable file
        (the finished chunks are kept, so a rerun with ``"skip"`` decodes nothing again);
        ``"skip"``: leave them out and list them in ``bad.json`` and the report.
    workers : decoding threads (default: the CPUs this process may use).
    after_chunk : called with each finished chunk's index (progress, tests).

    Raises
    ------
    DataError : unreadable files with ``on_error="refuse"``, a wrong-size image with
        ``resize="none"``, or nothing left to cache.
    ConfigError : a bad size, policy, channel count or worker count.
    """
    import time

    from thresher.progress import track

    if int(size) < 1:
        raise ConfigError(f"--size must be >= 1 pixel, got {size}")
    if resize not in RESIZE_POLICIES:
        raise ConfigError(
            f"unknown resize policy {resize!r}; use one of {', '.join(RESIZE_POLICIES)}"
        )
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    workers = workers or len(os.sched_getaffinity(0))
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if len(scan) == 0:
        raise DataError(f"{scan.where}: no images to cache")
    start_time = time.perf_counter()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if channels is None:
        channels = scan.probe_channels()
    plan = {
        "version": PIXELS_VERSION,
        "root": scan.where,
        "files": hashlib.sha256("\x00".join(scan.files.tolist()).encode()).hexdigest(),
        "n": len(scan),
        "size": int(size),
        "channels": channels,
        "resize": resize,
        "chunk": int(chunk),
    }
    shape = (len(scan), channels, int(size), int(size))
    done = _resume_state(folder, plan)
    if done is None:  # a new plan: start over
        for name in ("meta.json", "done.txt", "bad.json", "images.npy", "partial-bad.json"):
            (folder / name).unlink(missing_ok=True)
        # header plus a sparse file of the full size; rows are written with pwrite below
        np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
        _write_json(folder / "plan.json", plan)
        done = set()
    offset = _data_offset(folder / "images.npy")
    row_bytes = int(np.prod(shape[1:]))
    bad: dict[str, str] = _read_json(folder / "partial-bad.json") or {}
    starts = list(range(0, len(scan), chunk))
    todo = [k for k in range(len(starts)) if k not in done]
    resumed = len(starts) - len(todo)
    log = (folder / "done.txt").open("a")
    fd = os.open(folder / "images.npy", os.O_WRONLY)

    def decode_chunk(k: int) -> tuple[int, dict[str, str]]:
        # Each chunk is decoded into its own buffer and written with pwrite: the file is not
        # mapped while it is written, so the build's resident memory is a few chunks.
        lo, hi = starts[k], min(starts[k] + chunk, len(scan))
        buf = np.zeros((hi - lo, *shape[1:]), dtype=np.uint8)
        errors: dict[str, str] = {}
        for i in range(lo, hi):
            try:
                buf[i - lo] = scan.read(i, size=size, channels=channels, resize=resize)
            except DataError as err:  # collected: one report at the end, never a mid-run crash
                errors[str(scan.ids[i])] = str(err)
        _pwrite_all(fd, memoryview(buf.data).cast("B"), offset + lo * row_bytes)
        return k, errors

    decoded = 0
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for k, errors in track(
                pool.map(decode_chunk, todo),
                total=len(todo),
                desc=f"decoding {Path(scan.where).name}",
            ):
                os.fdatasync(fd)  # the rows are on disk before the chunk is marked done
                bad.update(errors)
                if errors:
                    _write_json(folder / "partial-bad.json", bad)
                log.write(f"{k}\n")
                log.flush()
                decoded += min(starts[k] + chunk, len(scan)) - starts[k]
                if after_chunk is not None:
                    after_chunk(k)
    finally:
        log.close()
        os.close(fd)
    if bad and on_error == "refuse":
        listed = "; ".join(f"{i} ({e})" for i, e in list(bad.items())[:LISTED_BAD])
        raise DataError(
            f"{len(bad)} of {len(scan)} images in {scan.where} cannot be decoded: {listed}"
            f"{' ...' if len(bad) > LISTED_BAD else ''}; fix or delete them, or pass "
            "--on-error skip to leave them out (the decoded images are kept: the rerun "
            "decodes nothing again)"
        )
    _finish(folder, scan, bad, plan)
    return PixelCacheReport(
        path=str(folder),
        images=len(scan) - len(bad),
        size=int(size),
        channels=channels,
        decoded=decoded,
        resumed_chunks=resumed,
        skipped=dict(bad),
        seconds=time.perf_counter() - start_time,
    )


def decode_file(path: Path, *, size: int, channels: int, resize: str) -> np.ndarray:
    """One image file as ``(channels, size, size)`` uint8, resized by ``resize``.

    Raises ``DataError`` for a file Pillow cannot read (or a decompression bomb), and for a
    wrong size with ``resize="none"``."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                if resize != "none" and opened.format == "JPEG":
                    # decode at 1/2, 1/4 or 1/8 scale when the result still covers size x size
                    w, h = opened.size
                    scale = (
                        min(w, h) / size if resize == "shorter-crop" else min(w / size, h / size)
                    )
                    if scale >= 2:
                        opened.draft(mode, (max(1, int(w / scale)), max(1, int(h / scale))))
                opened.load()
                return fit_image(
                    opened, size=size, channels=channels, resize=resize, where=str(path)
                )
    except DataError:
        raise
    except DECODE_ERRORS as err:
        raise DataError(f"{type(err).__name__}: {err}") from err


def fit_image(im: Image.Image, *, size: int, channels: int, resize: str, where: str) -> np.ndarray:
    """A decoded image as ``(channels, size, size)`` uint8 by the ``resize`` policy."""
    mode = "L" if channels == 1 else "RGB"
    if im.mode != mode:
        im = im.convert(mode)
    w, h = im.size
    if resize == "none":
        if (w, h) != (size, size):
            raise DataError(
                f"{where} is {w}x{h}, not {size}x{size}; choose --resize shorter-crop or "
                "stretch for mixed sizes"
            )
        out = im
    elif resize == "stretch":
        out = im.resize((size, size), Image.Resampling.BILINEAR)
    else:
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        out = im.resize(
            (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side)
        )
    arr = np.asarray(out)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _data_offset(path: Path) -> int:
    """Where the array's bytes start in a ``.npy`` file (after its header)."""
    return int(np.load(path, mmap_mode="r").offset)


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


def _resume_state(folder: Path, plan: dict[str, Any]) -> set[int] | None:
    """Finished chunk indices of a stopped build of the same plan; ``None`` to start over."""
    if _read_json(folder / "plan.json") != plan or not (folder / "images.npy").is_file():
        return None
    try:
        mapped = np.load(folder / "images.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if mapped.shape != (plan["n"], plan["channels"], plan["size"], plan["size"]):
        return None
    done: set[int] = set()
    log = folder / "done.txt"
    if log.is_file():
        for line in log.read_text().splitlines():
            if line.strip().isdigit():  # a torn last line (killed mid-write) is ignored
                done.add(int(line))
    return done


def _finish(folder: Path, scan: PixelSource, bad: dict[str, str], plan: dict[str, Any]) -> None:
    """Drop the skipped rows (streamed into a new file), then write ids/labels and meta last."""
    keep = np.asarray([str(i) not in bad for i in scan.ids])
    if bad:
        source = np.load(folder / "images.npy", mmap_mode="r")
        tmp = folder / "images.compact.npy"
        compact = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(int(keep.sum()), *source.shape[1:])
        )
        rows = np.flatnonzero(keep)
        for s in range(0, len(rows), CHUNK):
            compact[s : s + CHUNK] = source[rows[s : s + CHUNK]]
        compact.flush()
        del compact, source
        os.replace(tmp, folder / "images.npy")
        _write_json(folder / "bad.json", bad)
    ids = scan.ids[keep]
    labels = None if scan.labels is None else scan.labels[keep]
    if len(ids) == 0:
        raise DataError(f"{scan.where}: no image could be decoded; check the files")
    np.save(folder / "ids.npy", ids)
    if labels is not None:
        np.save(folder / "labels.npy", labels)
    if scan.root is not None:
        np.save(folder / "files.npy", scan.files[keep])
    images = np.load(folder / "images.npy", mmap_mode="r")
    meta = {
        "format": PIXELS_FORMAT,
        "version": PIXELS_VERSION,
        "plan": plan,
        "classes": list(scan.classes),
        "split": scan.split,
        "root": None if scan.root is None else str(scan.root),
        "labelled": labels is not None,
        "images": len(ids),
        "skipped": len(bad),
        "fingerprint": _dataset_fingerprint(ids, labels, scan.classes, images),
    }
    _write_json(folder / "meta.json", meta)
    (folder / "partial-bad.json").unlink(missing_ok=True)


def _dataset_fingerprint(
    ids: np.ndarray, labels: np.ndarray | None, classes: Sequence[str], images: np.ndarray
) -> str:
    return ImageDataset(images=images, labels=labels, ids=ids, classes=tuple(classes)).fingerprint()


def is_pixel_cache(path: str | os.PathLike[str]) -> bool:
    meta = _read_json(Path(path) / "meta.json")
    return isinstance(meta, dict) and meta.get("format") == PIXELS_FORMAT


def load_pixel_cache(path: str | os.PathLike[str]) -> ImageDataset:
    """A finished pixel cache as an :class:`ImageDataset` whose images are memory-mapped
    (read-only: nothing is read until a batch is gathered)."""
    folder = Path(path)
    meta = _read_json(folder / "meta.json")
    if not (isinstance(meta, dict) and meta.get("format") == PIXELS_FORMAT):
        raise DataError(
            f"{folder} is not a finished pixel cache (no meta.json); build it again, which "
            "resumes where it stopped"
        )
    images = np.load(folder / "images.npy", mmap_mode="r")
    ids = np.load(folder / "ids.npy")
    labels = np.load(folder / "labels.npy") if meta.get("labelled", True) else None
    classes = tuple(meta["classes"])
    name = Path(str(meta.get("root") or folder)).name
    split = meta.get("split")
    source: dict[str, Any] = {"format": PIXELS_FORMAT, "pixel_cache": str(folder)}
    if meta.get("root") and (folder / "files.npy").is_file():
        # the original files, so an export copies their bytes (not re-encoded pixels)
        files = np.load(folder / "files.npy").tolist()
        source = {
            "format": "image-folder",
            "path": str(meta["root"]),
            "archive": False,
            "files": dict(zip(ids.tolist(), files, strict=True)),
            "pixel_cache": str(folder),
        }
    return ImageDataset(
        images=images,
        labels=labels,
        ids=ids,
        classes=classes,
        name=f"{name}/{split}" if split else name,
        source=source,
        known_fingerprint=str(meta["fingerprint"]),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    """Write-then-rename: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True))
    os.replace(tmp, path)
