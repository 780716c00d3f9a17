"""Image folders ``split/class/*.ext`` (or ``class/*.ext``), from a directory or a tar archive.

Archives (``.tar.gz``, ``.tgz``, ``.tar``, ...) are streamed member by member in memory with
:mod:`tarfile`; nothing is ever extracted to disk. Members with absolute paths or ``..`` make
the whole archive refused. Hidden files and folders (``.DS_Store``, ``__MACOSX``, ``._x.jpg``)
and files with other extensions are skipped.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thresher.data.checksums import file_digest
from thresher.data.decode import decode_images
from thresher.data.subset import stratified_indices
from thresher.data.types import ImageDataset
from thresher.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: str | os.PathLike[str]) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def _is_image(rel: str) -> bool:
    # plain string operations: this runs once per archive member (60,000 for CIFAR-10)
    dot = rel.rfind(".")
    if dot < 0 or rel[dot:].lower() not in IMAGE_EXTENSIONS:
        return False
    return not any(p.startswith(".") or p == "__MACOSX" for p in rel.split("/"))


def _scan_directory(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            if _is_image(rel):
                found.append(rel)
    return found


def _safe_member_name(archive: Path, name: str) -> str:
    posix = name.replace("\\", "/")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if posix.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise DataError(
            f"{archive}: member {name!r} points outside the archive (absolute path or '..'); "
            "refusing the archive: repack it with relative paths"
        )
    return "/".join(parts)


def _read_archive(archive: Path, *, split: str | None) -> tuple[list[str], dict[str, bytes]]:
    """All image paths in ``archive`` and the bytes of those that can belong to ``split``."""
    paths: list[str] = []
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                rel = _safe_member_name(archive, member.name)
                if not member.isfile() or not _is_image(rel):
                    continue
                paths.append(rel)
                parts = rel.split("/")
                wanted = len(parts) >= 3 and parts[-3] == split if split else len(parts) >= 2
                if wanted:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        blobs[rel] = handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DataError(
            f"cannot read archive {archive}: it is truncated or corrupt ({err}); "
            "download or pack it again"
        ) from err
    return paths, blobs


@dataclass(frozen=True)
class FolderLayout:
    """Which files form the requested split, their ids and their class folders."""

    rel_paths: list[str]  # path relative to the source root, one per sample, sorted by id
    ids: list[str]
    class_dirs: list[str]
    classes: tuple[str, ...]


def _stem(source: Path) -> str:
    """The folder name, or the archive name without its archive suffix."""
    lower = source.name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return source.name[: -len(suffix)]
    return source.name


def _describe(source: Path) -> str:
    return f"archive {source}" if is_archive(source) else f"folder {source}"


def has_split_level(paths: list[str]) -> bool:
    """Whether any image sits at ``split/class/file`` depth or deeper."""
    return any(p.count("/") >= 2 for p in paths)


def plan_layout(source: Path, paths: list[str], *, split: str | None) -> FolderLayout:
    """Pick the files of ``split`` from all image ``paths`` and name their classes.

    A single common top folder (``cifar10/train/cat/1.png``) is allowed and not part of the id.
    """
    depth = 3 if split else 2
    if split:
        candidates = [p for p in paths if p.count("/") >= 2 and p.split("/")[-3] == split]
    else:
        candidates = [p for p in paths if p.count("/") >= 1]
    if not candidates:
        found_splits = sorted({p.split("/")[-3] for p in paths if p.count("/") >= 2})
        if split and found_splits:
            hint = f"it has split folders {', '.join(found_splits)}: pick one of them"
        elif split and any(p.count("/") == 1 for p in paths):
            hint = "it has class folders but no split level: pass split=None"
        else:
            hint = "expected split/class/image files (png, jpg, jpeg, bmp, webp)"
        layout = "split/class/*" if split else "class/*"
        raise DataError(
            f"no images in {layout} layout for split {split!r} in {_describe(source)}; {hint}"
        )
    prefixes = sorted({"/".join(p.split("/")[:-depth]) for p in candidates})
    if len(prefixes) > 1:
        shown = ", ".join(repr(p or ".") for p in prefixes[:3])
        fix = "pass split='train' (or the split you want)" if not split else "point at one of them"
        raise DataError(f"{_describe(source)}: images sit at several levels ({shown}); {fix}")
    prefix = prefixes[0]
    strip = len(prefix) + 1 if prefix else 0
    ordered = sorted(candidates, key=lambda p: p[strip:])
    # class names: union over all splits beside this one, so label indices agree across splits
    all_classes = {
        p[strip:].split("/")[-2]
        for p in paths
        if (not prefix or p.startswith(prefix + "/")) and p[strip:].count("/") == depth - 1
    }
    return FolderLayout(
        rel_paths=ordered,
        ids=[p[strip:] for p in ordered],
        class_dirs=[p.split("/")[-2] for p in ordered],
        classes=tuple(sorted(all_classes)),
    )


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    split: str | None = "train",
    classes: tuple[str, ...] | list[str] | None = None,
    name: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    flat_ok: bool = False,
) -> ImageDataset:
    """Load an image folder from a directory or a tar archive.

    Parameters:
        path: a directory, or a ``.tar.gz``/``.tgz``/``.tar`` archive read in memory.
        split: the split folder (``"train"``, ``"test"``, ...), or ``None`` for a ``class/*.ext``
            folder without a split level.
        classes: class names in label order; default the sorted class-folder names of all
            splits, so train and test agree on the label of each class.
        name: data set name; default the folder or archive name.
        limit: keep a seeded stratified subset of this many images (chosen before decoding).
        seed: seed of that subset.
        flat_ok: when the folder has no split level at all (``class/*.ext``), load all of it
            instead of failing (``source["split"]`` is then ``None``).

    Returns:
        :class:`ImageDataset` with ``images (N, C, H, W) uint8`` (C 1 for all-grey sets, else 3),
        labels from the class folder, ids the relative path (``train/airplane/0001.jpg``), sorted.
    """
    source = Path(path)
    if not source.exists():
        raise DataError(f"image folder {source} does not exist; check the path")
    archive = is_archive(source)
    if archive:
        paths, blobs = _read_archive(source, split=split)
    elif source.is_dir():
        paths, blobs = _scan_directory(source), {}
    else:
        raise DataError(
            f"{source} is neither a folder nor a tar archive (.tar.gz, .tgz, .tar); "
            "point at the image folder"
        )
    if flat_ok and split is not None and not has_split_level(paths):
        split = None
        if archive:
            paths, blobs = _read_archive(source, split=None)
    layout = plan_layout(source, paths, split=split)
    class_names = tuple(classes) if classes is not None else layout.classes
    index = {c: i for i, c in enumerate(class_names)}
    unknown = sorted(set(layout.class_dirs) - set(index))
    if unknown:
        raise DataError(
            f"{_describe(source)}: class folder {unknown[0]!r} is not in the class list "
            f"{list(class_names)}; add it to classes or remove the folder"
        )
    labels = np.array([index[c] for c in layout.class_dirs], dtype=np.int64)
    keep = np.arange(len(labels))
    if limit is not None:
        keep = stratified_indices(labels, len(labels), limit=limit, seed=seed)
    rel_paths = [layout.rel_paths[i] for i in keep]
    ids = [layout.ids[i] for i in keep]
    title = name or _stem(source) or "images"
    full_name = f"{title}/{split}" if split else title
    if archive:
        data = [blobs[p] for p in rel_paths]
    else:
        data = []
        for p, sample_id in zip(rel_paths, ids, strict=True):
            try:
                data.append((source / p).read_bytes())
            except OSError as err:
                raise DataError(
                    f"{full_name}: cannot read image {sample_id}: {err.strerror or err}; "
                    "check the file's permissions"
                ) from err
    blobs.clear()
    images, promoted = decode_images(data, ids, name=full_name)
    provenance: dict[str, object] = {
        "format": "image-folder",
        "path": str(source),
        "archive": archive,
        "split": split,
        # id -> file inside `path` (a mapping, so it stays valid for any subset of the ids)
        "files": dict(zip(ids, rel_paths, strict=True)),
    }
    if archive:
        provenance["sha256"] = file_digest(source)
    if limit is not None:
        provenance["limit"] = {"limit": limit, "seed": seed}
    if promoted:
        provenance["grey_promoted_to_rgb"] = promoted
    return ImageDataset(
        images=images,
        labels=labels[keep],
        ids=np.array(ids),
        classes=class_names,
        name=full_name,
        source=provenance,
    )
