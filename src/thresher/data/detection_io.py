"""Detection sets on disk: YOLO txt folders and COCO json, read and written.

YOLO (Ultralytics layout)::

    ROOT/images/<split>/<name>.png|jpg...    ROOT/labels/<split>/<name>.txt
    ROOT/classes.txt (one name per line) or ROOT/data.yaml (``names:``)

each label line ``cls cx cy w h``, normalised to ``[0, 1]`` by the image's width and height; an
image without objects has an empty label file (a missing one is an error: it is more often a
mistake than an empty image).

COCO::

    ROOT/images/<split>/<file_name>    ROOT/annotations/instances_<split>.json

with ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``image_id``,
``category_id``, ``bbox = [x, y, w, h]`` in pixels) and ``categories`` (``id``, ``name``); the
classes are the categories in ``id`` order.

Images are decoded with Pillow, grey when every image is grey, else RGB, and resized (stretched,
boxes scaled with them) to one size: ``size`` or else the first image's. Ids are the file names
without their extension. Files are only read; nothing in ROOT is ever written by a reader.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from thresher.data.detection import DetectionDataset
from thresher.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def is_yolo_folder(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "labels").is_dir()


def is_coco_folder(path: Path) -> bool:
    return (path / "annotations").is_dir() and any((path / "annotations").glob("instances_*.json"))


# --- shared --------------------------------------------------------------------------------------
def _images_of(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist; a detection split needs its image folder")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not files:
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _decode(files: list[Path], size: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, C, H, W) uint8, original sizes (N, 2) as (W, H))``."""
    from PIL import Image

    opened: list[Image.Image] = []
    for f in files:
        try:
            with Image.open(f) as handle:
                handle.load()
                opened.append(handle.copy())
        except OSError as err:
            raise DataError(f"{f} is not a readable image ({err}); fix or remove it") from None
    grey = all(o.mode in ("L", "1", "I;16", "I") for o in opened)
    mode = "L" if grey else "RGB"
    width, height = size if size is not None else opened[0].size
    out = np.empty((len(opened), 1 if grey else 3, height, width), dtype=np.uint8)
    sizes = np.empty((len(opened), 2), dtype=np.float64)
    for i, original in enumerate(opened):
        sizes[i] = original.size
        pic = original.convert(mode)
        if pic.size != (width, height):
            pic = pic.resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(pic)
        out[i] = arr[None] if grey else arr.transpose(2, 0, 1)
    return out, sizes


def _file_stem(sample_id: str) -> str:
    """A file name for an id: path separators and odd characters become ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id) or "_"


def _save_images(data: DetectionDataset, folder: Path) -> list[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    stems = [_file_stem(i) for i in data.ids.tolist()]
    if len(set(stems)) != len(stems):
        raise DataError(f"{data.name}: two ids map to one file name; make the ids file-safe")
    for k, stem in enumerate(stems):
        img = np.asarray(data.images[k])
        if img.dtype != np.uint8:
            img = np.round(img * 255).astype(np.uint8)
        pil = Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
        pil.save(folder / f"{stem}.png")
        names.append(f"{stem}.png")
    return names


def _check_new(out: Path, parts: list[Path]) -> None:
    clash = [p for p in parts if p.exists()]
    if clash:
        raise DataError(f"{clash[0]} already exists; write to a new folder (nothing was written)")


# --- YOLO ------------------------------------------------------------------------------------------
def _yolo_classes(root: Path) -> tuple[str, ...]:
    listing = root / "classes.txt"
    if listing.is_file():
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        if names:
            return tuple(names)
    for yaml_name in ("data.yaml", "dataset.yaml"):
        if (root / yaml_name).is_file():
            names = _yaml_names((root / yaml_name).read_text())
            if names:
                return tuple(names)
    raise DataError(
        f"{root}: no class names; add classes.txt (one name per line, in class-index order) "
        "or a data.yaml with `names:`"
    )


def _yaml_names(text: str) -> list[str]:
    """The ``names:`` of a YOLO data.yaml: an inline list, a block list or an index mapping.
    (A small reader for this one key, so that PyYAML is not a dependency.)"""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        rest = m.group(1).strip()
        if rest.startswith("["):
            inner = rest.strip("[]")
            return [v.strip().strip("'\"") for v in inner.split(",") if v.strip()]
        found: dict[int, str] = {}
        order: list[str] = []
        for sub in lines[i + 1 :]:
            if not sub.startswith((" ", "\t", "-")):
                break
            item = sub.strip()
            if item.startswith("-"):
                order.append(item[1:].strip().strip("'\""))
            elif ":" in item:
                key, _, value = item.partition(":")
                if key.strip().isdigit():
                    found[int(key)] = value.strip().strip("'\"")
        if found:
            return [found[k] for k in sorted(found)]
        return order
    return []


def load_yolo(
    root: str | os.PathLike[str], *, split: str = "train", size: tuple[int, int] | None = None
) -> DetectionDataset:
    """Read the YOLO-format split ``split`` under ``root`` (see the module's docstring).

    Raises
    ------
    DataError
        a missing label file, a malformed line, a class index beyond the class list, a box
        outside the image: each names the file and line.
    """
    base = Path(root)
    classes = _yolo_classes(base)
    files = _images_of(base / "images" / split)
    boxes: list[list[float]] = []
    labels: list[int] = []
    offsets = [0]
    images, _ = _decode(files, size)  # normalised boxes need no original size
    height, width = images.shape[2], images.shape[3]
    for f in files:
        label_file = base / "labels" / split / f"{f.stem}.txt"
        if not label_file.is_file():
            raise DataError(
                f"{label_file} is missing for image {f.name}; give every image a label file "
                "(an empty one for an image without objects)"
            )
        for n, line in enumerate(label_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 5:
                raise DataError(
                    f"{label_file}:{n}: expected 5 numbers (class cx cy w h), got {len(parts)}; "
                    "segments and keypoints are not read"
                )
            try:
                cls = int(parts[0])
                cx, cy, w, h = (float(v) for v in parts[1:5])
            except ValueError:
                raise DataError(
                    f"{label_file}:{n}: expected `class cx cy w h`, got {line.strip()!r}"
                ) from None
            if not 0 <= cls < len(classes):
                raise DataError(
                    f"{label_file}:{n}: class {cls} is not one of the {len(classes)} classes "
                    f"({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}); fix the "
                    "label or the class list"
                )
            x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
            tol = 1e-3
            if w <= 0 or h <= 0 or min(x1, y1) < -tol or max(x2, y2) > 1 + tol:
                raise DataError(
                    f"{label_file}:{n}: box (cx {cx:g}, cy {cy:g}, w {w:g}, h {h:g}) is empty "
                    "or outside [0, 1]; YOLO boxes are normalised by the image size"
                )
            boxes.append(
                [
                    min(max(x1, 0.0), 1.0) * width,
                    min(max(y1, 0.0), 1.0) * height,
                    min(max(x2, 0.0), 1.0) * width,
                    min(max(y2, 0.0), 1.0) * height,
                ]
            )
            labels.append(cls)
        offsets.append(len(boxes))
    return DetectionDataset(
        images=images,
        labels=None,
        ids=np.array([f.stem for f in files]),
        classes=classes,
        name=f"{base.name}/{split}",
        source={"format": "yolo", "path": str(base.resolve()), "split": split},
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, dtype=np.int64),
        box_offsets=np.asarray(offsets, dtype=np.int64),
    )


def write_yolo(data: DetectionDataset, out: str | os.PathLike[str], *, split: str) -> Path:
    """Write ``data`` as the YOLO split ``split`` under ``out`` (PNG images, normalised labels,
    classes.txt and data.yaml). Refuses to overwrite an existing split folder."""
    base = Path(out)
    img_dir, lbl_dir = base / "images" / split, base / "labels" / split
    _check_new(base, [img_dir, lbl_dir])
    names = _save_images(data, img_dir)
    lbl_dir.mkdir(parents=True)
    h, w = data.image_size
    for k, name in enumerate(names):
        b, c = data.targets(k)
        lines = [
            f"{int(cls)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
            f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            for (x1, y1, x2, y2), cls in zip(b.tolist(), c.tolist(), strict=True)
        ]
        (lbl_dir / f"{Path(name).stem}.txt").write_text("".join(f"{ln}\n" for ln in lines))
    (base / "classes.txt").write_text("".join(f"{c}\n" for c in data.classes))
    yaml = ["path: .", *(f"{s}: images/{s}" for s in _splits_in(base)), "names:"]
    yaml += [f"  {i}: {json.dumps(c)}" for i, c in enumerate(data.classes)]
    (base / "data.yaml").write_text("\n".join(yaml) + "\n")
    return base


def _splits_in(base: Path) -> list[str]:
    return sorted(p.name for p in (base / "images").iterdir() if p.is_dir())


# --- COCO ------------------------------------------------------------------------------------------
def load_coco(
    root: str | os.PathLike[str], *, split: str = "train", size: tuple[int, int] | None = None
) -> DetectionDataset:
    """Read the COCO split ``split`` under ``root`` (see the module's docstring).

    Raises
    ------
    DataError
        a missing json or image file, an annotation of an unknown image or category, a box
        outside its image: each names the file and the entry.
    """
    base = Path(root)
    ann_file = base / "annotations" / f"instances_{split}.json"
    if not ann_file.is_file():
        raise DataError(f"{ann_file} is missing; a COCO split needs its instances_<split>.json")
    try:
        doc: dict[str, Any] = json.loads(ann_file.read_text())
        images_meta = list(doc["images"])
        annotations = list(doc.get("annotations", []))
        categories = sorted(doc["categories"], key=lambda c: c["id"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(
            f"{ann_file} is not COCO instances json ({err}); it needs images, annotations and "
            "categories"
        ) from None
    if not categories:
        raise DataError(f"{ann_file} names no categories")
    cat_index = {c["id"]: i for i, c in enumerate(categories)}
    folder = base / "images" / split
    images_meta.sort(key=lambda m: str(m["file_name"]))
    files = [folder / str(m["file_name"]) for m in images_meta]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f} is listed in {ann_file.name} but missing; restore or unlist it")
    images, sizes = _decode(files, size)
    height, width = images.shape[2], images.shape[3]
    row_of = {m["id"]: k for k, m in enumerate(images_meta)}
    per_image: list[list[tuple[list[float], int]]] = [[] for _ in images_meta]
    for n, ann in enumerate(annotations):
        where = f"{ann_file.name}: annotation {ann.get('id', n)}"
        if ann.get("image_id") not in row_of:
            raise DataError(f"{where} refers to image {ann.get('image_id')!r}, not in `images`")
        if ann.get("category_id") not in cat_index:
            raise DataError(
                f"{where} has category {ann.get('category_id')!r}, not in `categories` "
                f"(ids {sorted(cat_index)[:10]})"
            )
        k = row_of[ann["image_id"]]
        ow, oh = sizes[k]
        x, y, w, h = (float(v) for v in ann["bbox"])
        if w <= 0 or h <= 0 or x < -1 or y < -1 or x + w > ow + 1 or y + h > oh + 1:
            raise DataError(
                f"{where}: bbox {[x, y, w, h]} (x, y, w, h) is empty or outside its "
                f"{int(ow)}x{int(oh)} image {files[k].name}"
            )
        sx, sy = width / ow, height / oh
        x1, y1 = max(x, 0.0) * sx, max(y, 0.0) * sy
        x2, y2 = min(x + w, ow) * sx, min(y + h, oh) * sy
        per_image[k].append(([x1, y1, x2, y2], cat_index[ann["category_id"]]))
    boxes = [b for items in per_image for b, _ in items]
    labels = [c for items in per_image for _, c in items]
    offsets = np.concatenate([[0], np.cumsum([len(items) for items in per_image])])
    return DetectionDataset(
        images=images,
        labels=None,
        ids=np.array([f.stem for f in files]),
        classes=tuple(str(c["name"]) for c in categories),
        name=f"{base.name}/{split}",
        source={"format": "coco", "path": str(base.resolve()), "split": split},
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        box_labels=np.asarray(labels, dtype=np.int64),
        box_offsets=offsets.astype(np.int64),
    )


def write_coco(data: DetectionDataset, out: str | os.PathLike[str], *, split: str) -> Path:
    """Write ``data`` as the COCO split ``split`` under ``out`` (PNG images and
    ``annotations/instances_<split>.json``). Refuses to overwrite an existing split."""
    base = Path(out)
    img_dir = base / "images" / split
    ann_file = base / "annotations" / f"instances_{split}.json"
    _check_new(base, [img_dir, ann_file])
    names = _save_images(data, img_dir)
    h, w = data.image_size
    annotations: list[dict[str, Any]] = []
    for k in range(len(data)):
        b, c = data.targets(k)
        for (x1, y1, x2, y2), cls in zip(b.tolist(), c.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": int(cls) + 1,
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "area": round((x2 - x1) * (y2 - y1), 3),
                    "iscrowd": 0,
                }
            )
    doc = {
        "images": [
            {"id": k + 1, "file_name": name, "width": w, "height": h}
            for k, name in enumerate(names)
        ],
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(data.classes)],
    }
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(doc))
    return base
