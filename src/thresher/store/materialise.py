"""Materialise a kept subset on disk without touching the original files.

Three modes:

* ``index``: one CSV (id, label, class, source file when known) — works for every source;
* ``symlink``: an image folder ``<class>/<file>`` of links to the originals (image folders that
  live in a directory only);
* ``copy``: an image folder of real files — byte copies of the originals for image folders
  (from a directory or from inside a ``.tar.gz``), PNGs encoded from the pixels for sources that
  have no per-image files (IDX, CIFAR batches, arrays).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError, RunError
from thresher.store.atomic import atomic_write_text

MaterialiseMode = Literal["index", "symlink", "copy"]
MODES: tuple[str, ...] = ("index", "symlink", "copy")


@dataclass(frozen=True)
class MaterialiseReport:
    """What :func:`materialise` wrote."""

    path: str
    mode: str
    count: int


def materialise(
    ds: ImageDataset,
    keep_ids: Sequence[str] | np.ndarray,
    out: str | os.PathLike[str],
    *,
    mode: MaterialiseMode = "index",
) -> MaterialiseReport:
    """Write the samples ``keep_ids`` of ``ds`` to ``out`` in ``mode``.

    ``out`` is a ``.csv`` path for ``index`` and a new (or empty) directory otherwise; a folder
    is assembled beside ``out`` and renamed into place, so an interrupted export leaves nothing
    half-written under ``out``.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown export mode {mode!r}; use one of {', '.join(MODES)}")
    idx = ds.indices_of(keep_ids)
    target = Path(out)
    _refuse_inside_source(ds, target)
    if mode == "index":
        return _write_index(ds, idx, target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RunError(f"{target} exists and is not empty; choose a new output folder")
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as err:
        raise RunError(
            f"cannot create {target}: {err.strerror or err}; choose a writable output directory"
        ) from err
    try:
        if mode == "symlink":
            _link_files(ds, idx, staging)
        else:
            _copy_files(ds, idx, staging)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except OSError as err:  # a full disk or a folder made read-only while copying
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(
            f"writing {target} failed: {err.strerror or err}; check free disk space and "
            "permissions, then export again"
        ) from err
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return MaterialiseReport(path=str(target), mode=mode, count=len(idx))


def _source_files(ds: ImageDataset) -> tuple[Path, dict[str, str], bool] | None:
    src = ds.source
    if src.get("format") != "image-folder" or "files" not in src:
        return None
    return Path(src["path"]), src["files"], bool(src.get("archive"))


def _refuse_inside_source(ds: ImageDataset, target: Path) -> None:
    files = _source_files(ds)
    if files is None:
        return
    root, _, archive = files
    base = root.parent if archive else root
    if target.resolve().is_relative_to(base.resolve()) and not archive:
        raise RunError(
            f"{target} is inside the data set's folder {root}; export outside it so the "
            "original data stay untouched"
        )


def _class_dir(ds: ImageDataset, i: int) -> str:
    if ds.labels is None:
        return "unlabelled"
    return _safe(ds.classes[int(ds.labels[i])])


def _safe(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "_"


def _write_index(ds: ImageDataset, idx: np.ndarray, target: Path) -> MaterialiseReport:
    files = _source_files(ds)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "label", "class", "file"])
    for i in idx:
        sid = str(ds.ids[i])
        label = "" if ds.labels is None else int(ds.labels[i])
        cls = "" if ds.labels is None else ds.classes[int(ds.labels[i])]
        file = ""
        if files is not None:
            root, mapping, archive = files
            file = f"{root}!{mapping[sid]}" if archive else str(root / mapping[sid])
        writer.writerow([sid, label, cls, file])
    atomic_write_text(target, buf.getvalue())
    return MaterialiseReport(path=str(target), mode="index", count=len(idx))


def _link_files(ds: ImageDataset, idx: np.ndarray, staging: Path) -> None:
    files = _source_files(ds)
    if files is None or files[2]:
        what = "an archive" if files is not None else f"{ds.source.get('format', 'arrays')} data"
        raise ConfigError(
            f"cannot symlink images of {what}: there are no separate image files to link to; "
            "use --format folder with copies or an index"
        )
    root, mapping, _ = files
    for i in idx:
        rel = Path(mapping[str(ds.ids[i])])
        dest = staging / _class_dir(ds, i) / rel.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to((root / rel).resolve())


def _copy_files(ds: ImageDataset, idx: np.ndarray, staging: Path) -> None:
    files = _source_files(ds)
    if files is None:
        _encode_pngs(ds, idx, staging)
        return
    root, mapping, archive = files
    wanted = {mapping[str(ds.ids[i])]: i for i in idx}
    if not archive:
        for rel, i in wanted.items():
            dest = staging / _class_dir(ds, i) / Path(rel).name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, dest)
        return
    written = 0
    try:
        with tarfile.open(root, "r:*") as tar:
            for member in tar:
                i = wanted.get(member.name)
                if i is None or not member.isfile():
                    continue
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                dest = staging / _class_dir(ds, i) / Path(member.name).name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(fh.read())
                written += 1
    except (tarfile.TarError, OSError) as err:
        raise DataError(f"cannot read {root} ({err}); check the archive") from err
    if written != len(wanted):
        raise DataError(
            f"{root} lacks {len(wanted) - written} of the images it was loaded from; "
            "the archive changed since loading: reload the data set"
        )


def _encode_pngs(ds: ImageDataset, idx: np.ndarray, staging: Path) -> None:
    from PIL import Image

    for i in idx:
        img = ds.images[i]
        if img.dtype != np.uint8:
            img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        hwc = np.transpose(img, (1, 2, 0))
        pil = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
        dest = staging / _class_dir(ds, i) / f"{_safe(str(ds.ids[i]))}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        pil.save(dest, format="PNG")
