"""LRP relevance maps (zennit), their max-abs normalisation and per-class negative intensity.

LRP-GUS (seed 000): ``lhat(x, y) = l(x, y) / max|l(x, y)|`` (eq. 1) and, per class ``j`` of a
set ``I``, ``f_j = sum_i min(0, mean_{x in I_j} lhat(x, y)_i)`` (eq. 2).

Relevance starts at the output as ``one_hot(y) * logit_y`` (the standard LRP start: the value
of the explained logit, as iNNvestigate's "index" mode does), so a true class whose logit is
negative yields a mostly negative map. ``start="one"`` starts from ``one_hot(y)`` instead;
after eq. 1 the two differ only in the sign of the maps whose true logit is negative.

Hooks live in zennit's ``Composite.context``: they are removed when the block ends, also on
error. Maps are of the model *input* (after the architecture's input transform).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from thresher.device import resolve_device
from thresher.errors import ConfigError, DataError
from thresher.explain.composites import make_composite

Transform = Callable[[torch.Tensor], torch.Tensor]
Start = Literal["logit", "one"]


@dataclass(frozen=True)
class LRPSettings:
    """How relevance is computed.

    Attributes:
        composite: name in :data:`thresher.explain.COMPOSITES` (default: pure epsilon).
        canonizer: name in :data:`thresher.explain.CANONIZERS` (default: ``auto``).
        epsilon: the epsilon rule's stabiliser (the paper's 1e-4).
        start: ``"logit"`` (one-hot times the explained logit) or ``"one"`` (one-hot).
        batch_size: images per modified backward pass.
    """

    composite: str = "epsilon"
    canonizer: str = "auto"
    epsilon: float = 1e-4
    start: Start = "logit"
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.start not in ("logit", "one"):
            raise ConfigError(f"LRP start must be 'logit' or 'one', got {self.start!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ConfigError(f"LRP batch_size must be an integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ConfigError(f"LRP batch_size must be >= 1, got {self.batch_size}")
        if not self.epsilon > 0:
            raise ConfigError(
                f"epsilon must be > 0, got {self.epsilon!r} (0 divides 0 by 0 where a unit's "
                "input sums to zero); the paper uses 1e-4, use e.g. 1e-9 for LRP-0"
            )


@dataclass(frozen=True)
class ClassRelevance:
    """Per-class sums of normalised relevance maps (streamed; memory independent of N).

    Attributes:
        sums: ``(K, *map_shape)`` float64 sum of ``lhat(x, y)`` over the images of each class.
        counts: ``(K,)`` images per class.
    """

    sums: np.ndarray
    counts: np.ndarray

    def mean_maps(self) -> np.ndarray:
        """``(K, *map_shape)`` class-mean normalised maps; NaN for a class without images."""
        shape = (-1,) + (1,) * (self.sums.ndim - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums / self.counts.reshape(shape).astype(np.float64)

    def negative_intensity(self) -> np.ndarray:
        """Eq. 2: ``(K,)`` ``f_j``; NaN for a class without images."""
        f = negative_intensity(np.nan_to_num(self.mean_maps()))
        return np.where(self.counts > 0, f, np.nan)


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Eq. 1: divide each map by its maximum absolute value; an all-zero map stays zero.

    ``(N, ...) -> (N, ...)``, same dtype and device.
    """
    flat = maps.reshape(maps.shape[0], -1)
    scale = flat.abs().amax(dim=1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (flat / scale[:, None]).reshape(maps.shape)


def negative_intensity(maps: np.ndarray | torch.Tensor) -> np.ndarray:
    """``n(x) = sum_i min(0, x_i)`` of each map: ``(K, ...) -> (K,)`` float64."""
    arr = maps.detach().cpu().double().numpy() if isinstance(maps, torch.Tensor) else maps
    arr = np.asarray(arr, dtype=np.float64)
    return np.minimum(arr.reshape(arr.shape[0], -1), 0.0).sum(axis=1)


def lrp_maps(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor | int,
    *,
    transform: Transform,
    settings: LRPSettings | None = None,
    device: str | torch.device | None = None,
    normalise: bool = True,
) -> np.ndarray:
    """Relevance maps of ``targets`` (one class per image) for ``images``, batched.

    Parameters
    ----------
    model : a classifier ``(B, C, H, W) -> (B, K)``; its mode and device are restored after.
    images : ``(N, C, H, W)`` stored pixels (uint8, or float in [0, 1]), numpy or torch.
    targets : ``(N,)`` class per image, or one class for all.
    transform : stored pixels -> model input (e.g. ``thresher.models.transform_for(name)``).
    settings : composite, canonizer, epsilon, start, batch size.
    normalise : apply eq. 1 to each map.

    Returns
    -------
    ``(N, C', H', W')`` float32 relevance of the model input.
    """
    out: list[np.ndarray] = []
    for maps, _ in _relevance_batches(
        model, images, targets, transform=transform, settings=settings, device=device
    ):
        out.append((normalise_maps(maps) if normalise else maps).float().cpu().numpy())
    if not out:
        raise DataError("no images to explain; pass at least one image")
    return np.concatenate(out)


def class_relevance(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    num_classes: int,
    transform: Transform,
    settings: LRPSettings | None = None,
    device: str | torch.device | None = None,
) -> ClassRelevance:
    """Sum the normalised true-class maps of ``images`` per class, streaming over batches.

    Memory is ``O(K x map size)`` on top of one batch, whatever ``N`` is.
    """
    sums: torch.Tensor | None = None
    counts = np.zeros(num_classes, dtype=np.int64)
    lab = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise DataError(f"labels must be in [0, {num_classes}); check num_classes")
    for maps, y in _relevance_batches(
        model, images, lab, transform=transform, settings=settings, device=device
    ):
        lhat = normalise_maps(maps).double()
        if sums is None:
            sums = torch.zeros(
                (num_classes, *lhat.shape[1:]), dtype=torch.float64, device=lhat.device
            )
        sums.index_add_(0, y, lhat)
        counts += np.bincount(y.cpu().numpy(), minlength=num_classes)
    if sums is None:
        raise DataError("no images to score; pass at least one image")
    return ClassRelevance(sums=sums.cpu().numpy(), counts=counts)


def explain_classes(
    model: nn.Module,
    image: np.ndarray | torch.Tensor,
    *,
    num_classes: int,
    transform: Transform,
    settings: LRPSettings | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Fig. 1: the normalised maps of one ``(C, H, W)`` image for every class, ``(K, C', H', W')``."""
    arr = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.asarray(image))
    if arr.ndim != 3:
        raise DataError(f"explain one (C, H, W) image, got shape {tuple(arr.shape)}")
    batch = arr.unsqueeze(0).expand(num_classes, *arr.shape)
    return lrp_maps(
        model,
        batch,
        np.arange(num_classes),
        transform=transform,
        settings=settings,
        device=device,
    )


def _relevance_batches(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    targets: np.ndarray | torch.Tensor | int,
    *,
    transform: Transform,
    settings: LRPSettings | None,
    device: str | torch.device | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(raw relevance (B, ...), targets (B,))`` per batch, on the device."""
    cfg = settings or LRPSettings()
    x_all = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.asarray(images))
    if x_all.ndim != 4:
        raise DataError(
            f"LRP needs (N, C, H, W) images, got shape {tuple(x_all.shape)}; add a channel axis"
        )
    n = x_all.shape[0]
    if isinstance(targets, int | np.integer):
        y_all = torch.full((n,), int(targets), dtype=torch.long)
    else:
        y_all = torch.as_tensor(
            np.asarray(targets.cpu() if isinstance(targets, torch.Tensor) else targets),
            dtype=torch.long,
        )
    if y_all.shape != (n,):
        raise DataError(f"need one target per image: {n} images, targets {tuple(y_all.shape)}")
    dev = resolve_device(device)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.to(dev).eval()
    composite = make_composite(
        cfg.composite, model=model, epsilon=cfg.epsilon, canonizer=cfg.canonizer
    )
    # relevance needs no weight gradients: switch them off for speed, restore them after
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        with composite.context(model) as modified:
            for a in range(0, n, cfg.batch_size):
                y = y_all[a : a + cfg.batch_size].to(dev)
                x = transform(x_all[a : a + cfg.batch_size].to(dev)).detach().requires_grad_(True)
                yield _relevance(modified, x, y, start=cfg.start), y
    finally:
        for p in trainable:
            p.requires_grad_(True)
        model.to(home).train(was_training)


def _relevance(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, start: Start) -> torch.Tensor:
    with torch.enable_grad():
        logits = model(x)
        if logits.ndim != 2:
            raise DataError(f"the model must return (B, K) logits, got {tuple(logits.shape)}")
        if int(y.max()) >= logits.shape[1] or int(y.min()) < 0:
            raise DataError(
                f"a target class is outside [0, {logits.shape[1]}); the model has "
                f"{logits.shape[1]} outputs"
            )
        one_hot = torch.zeros_like(logits).scatter_(1, y[:, None], 1.0)
        seed = one_hot * logits.detach() if start == "logit" else one_hot
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=seed)
    return grad.detach()
