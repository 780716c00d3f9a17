"""Training losses for long-tailed data: cross-entropy and LDAM, each with optional DRW.

LDAM (Cao et al., NeurIPS 2019): the true-class logit is lowered by a class margin
``m_j = C / n_j^(1/4)`` (``C`` chosen so the largest margin is ``max_margin``, 0.5 in the paper)
and the result is scaled by ``s`` (30) before cross-entropy. Deferred re-weighting (DRW): from
epoch ``drw_epoch`` on, each class is weighted by the class-balanced weight
``(1 - beta) / (1 - beta^n_j)`` (Cui et al. 2019, ``beta = 0.9999``), normalised to sum to the
number of classes; before that epoch all weights are 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thresher.errors import ConfigError

LOSSES = ("ce", "ldam")
#: ``criterion(logits (B, K), targets (B,), epoch=E) -> scalar loss``
Criterion = Callable[..., torch.Tensor]


def _check_counts(class_counts: np.ndarray | list[int]) -> np.ndarray:
    counts = np.asarray(class_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2:
        raise ConfigError(
            f"class counts must be a 1-d array with one entry per class (>= 2), got shape "
            f"{counts.shape}; pass np.bincount(labels, minlength=num_classes)"
        )
    if not np.all(np.isfinite(counts)) or np.any(counts < 1):
        empty = int(np.argmin(counts))
        raise ConfigError(
            f"class {empty} has {counts[empty]:g} training images; LDAM and DRW need at least "
            "one image per class (drop the empty class)"
        )
    return counts


def ldam_margins(class_counts: np.ndarray | list[int], *, max_margin: float = 0.5) -> np.ndarray:
    """``(K,)`` float64 margins ``C / n_j^(1/4)`` with ``C`` so that the largest is ``max_margin``."""
    if not max_margin > 0:
        raise ConfigError(f"the LDAM max margin must be > 0, got {max_margin!r}")
    counts = _check_counts(class_counts)
    raw = 1.0 / np.power(counts, 0.25)
    return raw * (max_margin / raw.max())


def drw_weights(class_counts: np.ndarray | list[int], *, beta: float = 0.9999) -> np.ndarray:
    """``(K,)`` float64 class-balanced weights ``(1 - beta) / (1 - beta^n_j)``, summing to K."""
    if not 0 <= beta < 1:
        raise ConfigError(f"the DRW beta must be in [0, 1), got {beta!r}")
    counts = _check_counts(class_counts)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return weights / weights.sum() * counts.size


class LDAMLoss(nn.Module):
    """Label-distribution-aware margin loss.

    Parameters
    ----------
    class_counts : ``(K,)`` training images per class.
    max_margin : the margin of the rarest class.
    scale : ``s``, multiplies the margin-adjusted logits before cross-entropy.
    """

    margins: torch.Tensor

    def __init__(
        self, class_counts: np.ndarray | list[int], *, max_margin: float = 0.5, scale: float = 30.0
    ) -> None:
        super().__init__()
        if not scale > 0:
            raise ConfigError(f"the LDAM scale s must be > 0, got {scale!r}")
        margins = ldam_margins(class_counts, max_margin=max_margin)
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32))
        self.scale = float(scale)

    def forward(
        self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean (class-weighted when ``weight`` is given) loss over the batch ``(B, K)``."""
        margin = self.margins.to(logits.device, logits.dtype)[targets]  # (B,)
        onehot = F.one_hot(targets, num_classes=logits.shape[1]).to(logits.dtype)
        adjusted = logits - onehot * margin[:, None]
        return F.cross_entropy(self.scale * adjusted, targets, weight=weight)


def make_criterion(
    recipe: Any, *, class_counts: np.ndarray, device: torch.device | str = "cpu"
) -> Criterion:
    """The recipe's loss as ``criterion(logits, targets, epoch=E)`` (epochs are 1-based).

    ``recipe.loss == "ce"`` without DRW is plain ``F.cross_entropy`` with the recipe's label
    smoothing, exactly as before losses were selectable.
    """
    name = getattr(recipe, "loss", "ce")
    drw_epoch = getattr(recipe, "drw_epoch", None)
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}")
    weight: torch.Tensor | None = None
    if drw_epoch is not None:
        weight = torch.tensor(
            drw_weights(class_counts, beta=getattr(recipe, "drw_beta", 0.9999)),
            dtype=torch.float32,
            device=device,
        )
    smoothing = float(getattr(recipe, "label_smoothing", 0.0))

    def weight_at(epoch: int) -> torch.Tensor | None:
        return weight if drw_epoch is not None and epoch >= drw_epoch else None

    if name == "ce":

        def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, *, epoch: int) -> Any:
            return F.cross_entropy(
                logits, targets, weight=weight_at(epoch), label_smoothing=smoothing
            )

        return cross_entropy
    max_margin = getattr(recipe, "ldam_max_margin", 0.5)
    scale = getattr(recipe, "ldam_scale", 30.0)
    if getattr(recipe, "head", "linear") == "cosine":
        # the cosine head already multiplies its cosines by s: s * (cos - m) = logits - s * m
        max_margin, scale = max_margin * scale, 1.0
    ldam = LDAMLoss(class_counts, max_margin=max_margin, scale=scale).to(device)

    def ldam_loss(logits: torch.Tensor, targets: torch.Tensor, *, epoch: int) -> Any:
        return ldam(logits, targets, weight=weight_at(epoch))

    return ldam_loss
