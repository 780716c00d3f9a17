"""Colours that define a class (Algorithm 4, Fig. 7 of Dablain et al.).

For every image, the gradient saliency (Simonyan et al. 2013: ``max_channel |d logit_y / d x|``)
of its TRUE class ``y`` picks the top ``fraction`` (10%) of pixel locations; their stored RGB
values are sorted into 14 colour bins, and per class and bin a count and a running mean colour
are updated. State is ``O(classes x 14 x 3)`` whatever the number of images. The model runs in
eval mode on the stored pixels through its input transform only: no augmentation. Grayscale
images (one channel) are read as R = G = B, so they can only fall in the four achromatic bins.

The 14 bins (hue H in degrees, saturation S and value V in [0, 1], HSV of the pixel):

============ ==============================================================
black        V < 0.2
gray         S < 0.2 and V < 0.5
silver       S < 0.2 and 0.5 <= V < 0.8
white        S < 0.2 and V >= 0.8
red          H < 15 or H >= 345
orange       15 <= H < 45 (and not brown)
brown        15 <= H < 45 and (V < 0.6 or S < 0.4)
yellow       45 <= H < 70
green        70 <= H < 165
cyan         165 <= H < 195
light blue   195 <= H < 255 and V >= 0.7 and S < 0.6
blue         195 <= H < 255 otherwise
purple       255 <= H < 290
pink         290 <= H < 345
============ ==============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thresher.data.types import ImageDataset
from thresher.diagnose._result import DiagnosticResult
from thresher.errors import ConfigError, DataError
from thresher.validation import check_labels

COLOUR_BINS = (
    "black",
    "gray",
    "silver",
    "white",
    "red",
    "orange",
    "brown",
    "yellow",
    "green",
    "cyan",
    "light blue",
    "blue",
    "purple",
    "pink",
)
NUM_BINS = len(COLOUR_BINS)
_BIN = {name: i for i, name in enumerate(COLOUR_BINS)}


def colour_bins(rgb: np.ndarray) -> np.ndarray:
    """``(...)`` int64 bin index (into :data:`COLOUR_BINS`) of RGB values ``(..., 3)`` in
    [0, 255]."""
    x = np.asarray(rgb, dtype=np.float64) / 255.0
    if x.shape[-1] != 3:
        raise DataError(f"colour bins need RGB values (..., 3), got shape {x.shape}")
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    v = x.max(axis=-1)
    chroma = v - x.min(axis=-1)
    s = np.where(v > 0, chroma / np.where(v > 0, v, 1), 0.0)
    safe = np.where(chroma > 0, chroma, 1.0)
    h = np.where(
        v == r,
        ((g - b) / safe) % 6.0,
        np.where(v == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = np.where(chroma > 0, h * 60.0, 0.0)
    out = np.full(h.shape, _BIN["pink"], dtype=np.int64)
    out[(h < 15) | (h >= 345)] = _BIN["red"]
    orange = (h >= 15) & (h < 45)
    out[orange] = _BIN["orange"]
    out[orange & ((v < 0.6) | (s < 0.4))] = _BIN["brown"]
    out[(h >= 45) & (h < 70)] = _BIN["yellow"]
    out[(h >= 70) & (h < 165)] = _BIN["green"]
    out[(h >= 165) & (h < 195)] = _BIN["cyan"]
    blue = (h >= 195) & (h < 255)
    out[blue] = _BIN["blue"]
    out[blue & (v >= 0.7) & (s < 0.6)] = _BIN["light blue"]
    out[(h >= 255) & (h < 290)] = _BIN["purple"]
    grey = s < 0.2
    out[grey & (v < 0.5)] = _BIN["gray"]
    out[grey & (v >= 0.5) & (v < 0.8)] = _BIN["silver"]
    out[grey & (v >= 0.8)] = _BIN["white"]
    out[v < 0.2] = _BIN["black"]
    return out


class ColourAccumulator:
    """Streaming per-class colour-bin counts ``(C, 14)`` and mean colours ``(C, 14, 3)``."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.counts_ = np.zeros((num_classes, NUM_BINS), dtype=np.int64)
        self.means_ = np.zeros((num_classes, NUM_BINS, 3), dtype=np.float64)

    def update(self, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Add pixels ``rgb`` ``(P, 3)`` in [0, 255] belonging to classes ``labels`` ``(P,)``."""
        rgb = np.asarray(rgb, dtype=np.float64).reshape(-1, 3)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.shape[0] != rgb.shape[0]:
            raise DataError(f"{rgb.shape[0]} pixels but {labels.shape[0]} labels; one per pixel")
        if labels.size == 0:
            return
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise DataError(f"pixel labels must lie in [0, {self.num_classes}); check the labels")
        size = self.num_classes * NUM_BINS
        key = labels * NUM_BINS + colour_bins(rgb)
        added = np.bincount(key, minlength=size).reshape(self.num_classes, NUM_BINS)
        sums = np.stack(
            [np.bincount(key, weights=rgb[:, ch], minlength=size) for ch in range(3)], axis=-1
        ).reshape(self.num_classes, NUM_BINS, 3)
        total = self.counts_ + added
        grew = added > 0
        # Running mean: m += (sum_new - n_new * m) / n_total, only where pixels arrived.
        delta = (sums - added[..., None] * self.means_) / np.maximum(total, 1)[..., None]
        self.means_[grew] += delta[grew]
        self.counts_ = total


def true_class_saliency(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``(B, H, W)`` gradient saliency of each image's true class, at the stored size.

    ``max over channels |d logit_label / d input|``; when the transform resizes, the map is
    resized back (bilinear) so it indexes the stored pixels.
    """
    with torch.enable_grad():
        x = transform(images).detach().requires_grad_(True)
        logits = model(x)
        if logits.ndim != 2:
            raise DataError(f"the model returned {tuple(logits.shape)}; saliency needs (B, K)")
        score = logits.gather(1, labels.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(score, x)
    sal = grad.abs().amax(dim=1)
    if sal.shape[-2:] != images.shape[-2:]:
        sal = F.interpolate(sal[:, None], size=images.shape[-2:], mode="bilinear")[:, 0]
    return sal.detach()


def top_pixels(images: torch.Tensor, saliency: torch.Tensor, *, fraction: float) -> np.ndarray:
    """``(B, P, 3)`` RGB values in [0, 255] of each image's ``ceil(fraction * H * W)`` most
    salient pixels (grayscale read as R = G = B)."""
    b, c, h, w = images.shape
    n_top = max(1, math.ceil(fraction * h * w))
    idx = torch.topk(saliency.reshape(b, -1).cpu(), n_top, dim=1).indices  # (B, P)
    pixels = images.reshape(b, c, -1).cpu()
    picked = torch.gather(pixels, 2, idx[:, None, :].expand(b, c, n_top)).float()
    if images.dtype.is_floating_point:  # stored in [0, 1]
        picked = picked * 255.0
    if c == 1:
        picked = picked.expand(b, 3, n_top)
    return picked.permute(0, 2, 1).numpy()


@dataclass(frozen=True)
class ColourResult(DiagnosticResult):
    """Attributes:
    classes: ``(C,)`` class names.
    fraction: share of each image's pixels kept (most salient first).
    images: ``(C,)`` images seen per class.
    counts: ``(C, 14)`` salient pixels per class and colour bin (:data:`COLOUR_BINS`).
    means: ``(C, 14, 3)`` mean RGB in [0, 255] per class and bin (0 for empty bins).
    """

    classes: tuple[str, ...]
    fraction: float
    images: np.ndarray
    counts: np.ndarray
    means: np.ndarray

    _int_arrays = ("images", "counts")
    _float_arrays = ("means",)

    @property
    def share(self) -> np.ndarray:
        """``(C, 14)`` share of each class's salient pixels per bin (NaN for unseen classes)."""
        total = self.counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, self.counts / np.maximum(total, 1), np.nan)

    def summary(self) -> dict[str, Any]:
        return {
            "fraction": self.fraction,
            "top_colours": {
                self.classes[c]: [COLOUR_BINS[b] for b in np.argsort(-self.counts[c])[:3]]
                for c in range(len(self.classes))
                if self.images[c] > 0
            },
        }

    def table(self) -> list[list[str]]:
        rows = [["class", "images", *COLOUR_BINS]]
        share = self.share
        for c, name in enumerate(self.classes):
            rows.append(
                [name, str(int(self.images[c]))]
                + ["-" if np.isnan(v) else f"{100 * v:.1f}%" for v in share[c]]
            )
        return rows


Batches = Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]]


def _dataset_batches(ds: ImageDataset, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    labels = ds.require_labels("the colour analysis")
    for a in range(0, len(ds), batch_size):
        yield ds.images[a : a + batch_size], labels[a : a + batch_size]


def class_colours(
    model: nn.Module,
    data: ImageDataset | Batches,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor],
    classes: tuple[str, ...] | list[str],
    fraction: float = 0.1,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> ColourResult:
    """Salient colours of every class, streamed over ``data``.

    Parameters
    ----------
    model : the classifier ``(B, C, H, W) -> (B, K)``; run in eval mode, restored afterwards.
    data : an ImageDataset (labelled) or an iterable of ``(images (B, C, H, W), labels (B,))``
        with stored pixels (uint8, or float in [0, 1]) and true classes.
    transform : stored pixels -> model input (the run's input transform; no augmentation).
    classes : class names (their number fixes the accumulator's size).
    fraction : share of pixels kept per image (0.1 = top 10%).
    batch_size : images per backward pass for an ImageDataset.
    device : where the model runs (default CUDA when present).

    Returns
    -------
    ColourResult
    """
    from thresher.device import resolve_device

    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1], got {fraction!r}")
    if isinstance(data, ImageDataset):
        if data.channels not in (1, 3):
            raise DataError(f"colours need 1- or 3-channel images, got {data.channels}")
        batches: Batches = _dataset_batches(data, batch_size)
    else:
        batches = data
    names = tuple(str(c) for c in classes)
    acc = ColourAccumulator(len(names))
    seen = np.zeros(len(names), dtype=np.int64)
    dev = resolve_device(device)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.to(dev).eval()
    try:
        for images, labels in batches:
            x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
            if x.ndim != 4 or x.shape[1] not in (1, 3):
                raise DataError(f"colours need (B, 1|3, H, W) images, got {tuple(x.shape)}")
            y_np = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
            y = check_labels(y_np, n=x.shape[0], num_classes=len(names))
            x = x.to(dev)
            sal = true_class_saliency(model, x, torch.from_numpy(y).to(dev), transform=transform)
            rgb = top_pixels(x, sal, fraction=fraction)  # (B, P, 3)
            acc.update(rgb.reshape(-1, 3), np.repeat(y, rgb.shape[1]))
            seen += np.bincount(y, minlength=len(names))
    finally:
        model.to(home).train(was_training)
    return ColourResult(
        classes=names,
        fraction=float(fraction),
        images=seen,
        counts=acc.counts_.copy(),
        means=acc.means_.copy(),
    )
