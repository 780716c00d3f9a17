"""Plant known corruptions into a real data set, by seed, and record every one.

A filter is judged by whether it finds the bad images a user knows are there. This module
makes such a data set: real images with corruptions of several kinds and strengths added (never
changing the source arrays), each planted item recorded with its kind and, for copies, the id
of the image it copies. :mod:`thresher.planted.scoring` scores any ranking against the record.

Kinds (:data:`KINDS`; a ``*`` marks those that need a second data set or labels):

* ``ood``\\* — an image of another data set (e.g. Fashion-MNIST under MNIST), converted to
  this set's size and channels, filed under a random class.
* ``copy_exact`` — a byte-identical copy of an image (new id, same label).
* ``copy_shift`` — the copy shifted by 1 pixel (edge pixels replicated).
* ``copy_crop`` — a centred crop of 90% of the side, resized back.
* ``copy_noise`` — Gaussian pixel noise, sigma 8/255.
* ``copy_jpeg`` — re-encoded as JPEG at quality 50.
* ``copy_bright`` — brightness x1.25 (clipped).
* ``label_random``\\* — the label flipped to a uniformly random other class (in place).
* ``label_confusable``\\* — the label flipped to the other class whose pixel centroid is
  nearest the image (the most confusable class without a model).
* ``blank`` — a constant image at a random grey level.
* ``saturated`` — contrast x4 around mid-grey, clipped: almost pure black and white.
* ``tiny`` — the image shrunk to a quarter of its side, centred on the background colour.

Copies and broken images are new rows; label flips change rows of the source in the copy that
is returned. Every planted row is recorded in a :class:`PlantRecord`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError

COPY_KINDS = (
    "copy_exact",
    "copy_shift",
    "copy_crop",
    "copy_noise",
    "copy_jpeg",
    "copy_bright",
)
LABEL_KINDS = ("label_random", "label_confusable")
BROKEN_KINDS = ("blank", "saturated", "tiny")
KINDS = ("ood", *COPY_KINDS, *LABEL_KINDS, *BROKEN_KINDS)
# What a filter is expected to call each kind (the family scoring groups them by).
FAMILY = {
    "ood": "outlier",
    **dict.fromkeys(COPY_KINDS, "duplicate"),
    **dict.fromkeys(LABEL_KINDS, "label"),
    **dict.fromkeys(BROKEN_KINDS, "outlier"),
}

# A benchmark's default mix: counts per kind as a share of the clean set's size.
DEFAULT_SHARES: dict[str, float] = {
    "ood": 0.02,
    "copy_exact": 0.01,
    "copy_shift": 0.01,
    "copy_crop": 0.005,
    "copy_noise": 0.005,
    "copy_jpeg": 0.005,
    "copy_bright": 0.005,
    "label_random": 0.02,
    "label_confusable": 0.02,
    "blank": 0.002,
    "saturated": 0.002,
    "tiny": 0.002,
}


@dataclass(frozen=True)
class PlantRecord:
    """Which rows of the planted data set are corrupted, and how.

    Attributes:
        kind: ``(N,)`` str, ``"clean"`` or one of :data:`KINDS`.
        source_id: ``(N,)`` str: the copied image's id for copies, the foreign image's id for
            ``ood``, the row's own id for label flips, ``""`` otherwise.
        true_label: ``(N,)`` int64, the label before a flip (``-1`` for ``ood`` and broken
            images, whose filed label means nothing).
        params: the seed and the counts asked for.
    """

    kind: np.ndarray
    source_id: np.ndarray
    true_label: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)

    def mask(self, kind: str) -> np.ndarray:
        """``(N,)`` bool, the rows planted as ``kind`` (``"clean"`` for the untouched ones)."""
        return self.kind == kind

    @property
    def counts(self) -> dict[str, int]:
        names, counts = np.unique(self.kind, return_counts=True)
        return {str(k): int(c) for k, c in zip(names, counts, strict=True)}

    def to_table(self, ids: np.ndarray) -> dict[str, list[Any]]:
        return {
            "id": [str(i) for i in ids],
            "kind": self.kind.tolist(),
            "source_id": self.source_id.tolist(),
            "true_label": self.true_label.tolist(),
        }


def plant(
    data: ImageDataset,
    *,
    shares: Mapping[str, float] | None = None,
    counts: Mapping[str, int] | None = None,
    foreign: ImageDataset | None = None,
    seed: int = 0,
) -> tuple[ImageDataset, PlantRecord]:
    """A copy of ``data`` with corruptions planted, and the record of what was planted.

    Parameters
    ----------
    data : the clean, labelled source ``(N, C, H, W)`` uint8; it is never modified.
    shares : kind -> share of ``N`` to plant (default :data:`DEFAULT_SHARES`); ignored for
        kinds named in ``counts``.
    counts : kind -> exact number to plant (overrides ``shares``).
    foreign : the data set ``ood`` images come from (needed when ``ood`` is asked for).
    seed : decides which images are copied, flipped or taken from ``foreign``.

    Returns
    -------
    ``(planted, record)``: ``planted`` has the source rows first (in order, label flips
    applied), then the new rows, shuffled among themselves; ids of new rows are
    ``planted/<kind>/<n>``.
    """
    if data.images.dtype != np.uint8:
        raise DataError(
            f"{data.name}: planting needs uint8 images (0-255), got {data.images.dtype}"
        )
    if data.labels is None:
        raise DataError(f"{data.name}: planting needs a labelled data set (labels are None)")
    n_src = len(data)
    wanted = _wanted(shares, counts, n_src)
    if wanted.get("ood", 0) and foreign is None:
        raise ConfigError(
            "planting 'ood' images needs foreign= (another data set, e.g. fashion-mnist under "
            "mnist); pass it or set the ood share to 0"
        )
    n_labels = sum(wanted.get(k, 0) for k in LABEL_KINDS)
    n_copies = sum(wanted.get(k, 0) for k in COPY_KINDS)
    if n_labels + n_copies > n_src:
        raise ConfigError(
            f"{n_labels} label flips and {n_copies} copies need distinct source images but the "
            f"data set has only {n_src}; lower the shares"
        )
    rng = np.random.default_rng(seed)
    k = data.num_classes
    if n_labels and k < 2:
        raise ConfigError("label flips need at least two classes")
    labels = data.labels.astype(np.int64).copy()
    src_kind = np.full(n_src, "clean", dtype=object)
    src_source = np.full(n_src, "", dtype=object)
    src_true = labels.copy()
    # Label flips and copy sources are disjoint, so a copy never duplicates a flipped image.
    chosen = rng.permutation(n_src)[: n_labels + n_copies]
    flip_rows, copy_rows = chosen[:n_labels], chosen[n_labels:]
    centroids = _class_centroids(data) if wanted.get("label_confusable", 0) else None
    at = 0
    for kind in LABEL_KINDS:
        rows = np.sort(flip_rows[at : at + wanted.get(kind, 0)])
        at += rows.shape[0]
        for r in rows:
            old = int(labels[r])
            if kind == "label_random":
                new = int(rng.integers(k - 1))
                new += new >= old
            else:
                assert centroids is not None
                d = ((centroids - data.images[r].astype(np.float32).ravel()) ** 2).sum(axis=1)
                d[old] = np.inf
                new = int(np.argmin(d))
            labels[r] = new
            src_kind[r] = kind
            src_source[r] = data.ids[r]

    new_images: list[np.ndarray] = []
    new_labels: list[int] = []
    new_kind: list[str] = []
    new_source: list[str] = []
    new_true: list[int] = []
    at = 0
    for kind in COPY_KINDS:
        rows = np.sort(copy_rows[at : at + wanted.get(kind, 0)])
        at += rows.shape[0]
        for r in rows:
            new_images.append(_copy(data.images[r], kind, rng))
            new_labels.append(int(data.labels[r]))
            new_kind.append(kind)
            new_source.append(str(data.ids[r]))
            new_true.append(int(data.labels[r]))
    if wanted.get("ood", 0):
        assert foreign is not None
        n_ood = wanted["ood"]
        if n_ood > len(foreign):
            raise ConfigError(f"{n_ood} ood images asked for but foreign= has {len(foreign)}")
        for r in np.sort(rng.choice(len(foreign), size=n_ood, replace=False)):
            new_images.append(_fit_to(foreign.images[r], data.images.shape[1:]))
            new_labels.append(int(rng.integers(k)))
            new_kind.append("ood")
            new_source.append(f"{foreign.name}:{foreign.ids[r]}")
            new_true.append(-1)
    for kind in BROKEN_KINDS:
        for _ in range(wanted.get(kind, 0)):
            base = data.images[int(rng.integers(n_src))]
            new_images.append(_broken(base, kind, rng))
            new_labels.append(int(rng.integers(k)))
            new_kind.append(kind)
            new_source.append("")
            new_true.append(-1)

    order = rng.permutation(len(new_images))
    per_kind: dict[str, int] = {}
    new_ids = []
    for i in order:
        kind = new_kind[i]
        per_kind[kind] = per_kind.get(kind, 0) + 1
        new_ids.append(f"planted/{kind}/{per_kind[kind] - 1:05d}")
    clash = set(new_ids) & set(data.ids.tolist())
    if clash:
        raise DataError(f"{data.name} already has ids like {sorted(clash)[0]!r}; rename them")
    if new_images:
        images = np.concatenate([data.images, np.stack([new_images[i] for i in order])])
        all_labels = np.concatenate([labels, np.asarray(new_labels, np.int64)[order]])
        ids = np.concatenate([data.ids, np.asarray(new_ids)])
    else:
        images, all_labels, ids = data.images.copy(), labels, data.ids.copy()
    record = PlantRecord(
        kind=np.concatenate([src_kind, np.asarray(new_kind, dtype=object)[order]]).astype(str),
        source_id=np.concatenate([src_source, np.asarray(new_source, dtype=object)[order]]).astype(
            str
        ),
        true_label=np.concatenate([src_true, np.asarray(new_true, np.int64)[order]]),
        params={"seed": int(seed), "wanted": dict(wanted), "source": data.name},
    )
    planted = ImageDataset(
        images=np.ascontiguousarray(images),
        labels=all_labels,
        ids=ids,
        classes=data.classes,
        name=f"{data.name}+planted",
        source={**data.source, "planted": record.params},
    )
    return planted, record


def _wanted(
    shares: Mapping[str, float] | None, counts: Mapping[str, int] | None, n: int
) -> dict[str, int]:
    # Exact counts alone plant only what they name; neither given: the default mix.
    shares = dict(DEFAULT_SHARES if shares is None and counts is None else shares or {})
    counts = dict(counts or {})
    for name in [*shares, *counts]:
        if name not in KINDS:
            raise ConfigError(f"unknown corruption kind {name!r} (valid: {', '.join(KINDS)})")
    out: dict[str, int] = {}
    for kind in KINDS:
        if kind in counts:
            value = int(counts[kind])
        else:
            share = float(shares.get(kind, 0.0))
            if not 0.0 <= share < 1.0:
                raise ConfigError(f"share of {kind!r} must be in [0, 1), got {share}")
            value = round(share * n)
        if value < 0:
            raise ConfigError(f"count of {kind!r} must be >= 0, got {value}")
        if value:
            out[kind] = value
    return out


def _class_centroids(data: ImageDataset) -> np.ndarray:
    assert data.labels is not None
    flat = data.images.reshape(len(data), -1)
    out = np.zeros((data.num_classes, flat.shape[1]), dtype=np.float32)
    for c in range(data.num_classes):
        rows = data.labels == c
        if rows.any():
            out[c] = flat[rows].mean(axis=0, dtype=np.float64)
        else:
            out[c] = np.inf  # a class without images can never be the nearest
    return out


def _shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    _c, h, w = img.shape
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="edge")
    return pad[:, 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w].copy()


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(C, H, W)`` uint8 resized (bilinear, PIL) to ``size = (H', W')``."""
    from PIL import Image

    chans = [
        np.asarray(Image.fromarray(ch).resize((size[1], size[0]), Image.Resampling.BILINEAR))
        for ch in img
    ]
    return np.stack(chans).astype(np.uint8)


def _copy(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    c, h, w = img.shape
    if kind == "copy_exact":
        return img.copy()
    if kind == "copy_shift":
        dy, dx = [(0, 1), (0, -1), (1, 0), (-1, 0)][int(rng.integers(4))]
        return _shift(img, dy, dx)
    if kind == "copy_crop":
        ch, cw = max(1, round(0.9 * h)), max(1, round(0.9 * w))
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(img[:, top : top + ch, left : left + cw], (h, w))
    if kind == "copy_noise":
        noisy = img.astype(np.float32) + rng.normal(0.0, 8.0, size=img.shape)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if kind == "copy_jpeg":
        from PIL import Image

        mode_img = Image.fromarray(img[0] if c == 1 else img.transpose(1, 2, 0))
        buf = io.BytesIO()
        mode_img.save(buf, format="JPEG", quality=50)
        buf.seek(0)
        back = np.asarray(Image.open(buf).convert("L" if c == 1 else "RGB"))
        return (back[None] if c == 1 else back.transpose(2, 0, 1)).astype(np.uint8)
    if kind == "copy_bright":
        return np.clip(np.rint(img.astype(np.float32) * 1.25), 0, 255).astype(np.uint8)
    raise ConfigError(f"unknown copy kind {kind!r}")


def _broken(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    _c, h, w = img.shape
    if kind == "blank":
        return np.full(img.shape, int(rng.integers(256)), dtype=np.uint8)
    if kind == "saturated":
        f = (img.astype(np.float32) - 127.5) * 4.0 + 127.5
        return np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if kind == "tiny":
        small = _resize(img, (max(1, h // 4), max(1, w // 4)))
        # The border's median is the background (black for MNIST, varied for photos).
        border = np.concatenate([img[:, 0], img[:, -1], img[:, :, 0], img[:, :, -1]], axis=1)
        out = np.empty_like(img)
        out[:] = np.median(border, axis=1).astype(np.uint8)[:, None, None]
        top, left = (h - small.shape[1]) // 2, (w - small.shape[2]) // 2
        out[:, top : top + small.shape[1], left : left + small.shape[2]] = small
        return out
    raise ConfigError(f"unknown broken kind {kind!r}")


def _fit_to(img: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A foreign ``(C', H', W')`` uint8 image as ``shape = (C, H, W)``."""
    c, h, w = shape
    x = img if img.dtype == np.uint8 else np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if x.shape[1:] != (h, w):
        x = _resize(x, (h, w))
    if x.shape[0] == c:
        return x
    if c == 1:  # RGB -> grey (ITU-R 601 luma)
        luma = 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[None]
    return np.repeat(x[:1], c, axis=0)


__all__ = [
    "BROKEN_KINDS",
    "COPY_KINDS",
    "DEFAULT_SHARES",
    "FAMILY",
    "KINDS",
    "LABEL_KINDS",
    "PlantRecord",
    "plant",
]
