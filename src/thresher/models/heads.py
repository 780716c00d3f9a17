"""Classifier heads a training recipe can ask for (``Recipe.head``).

``linear`` is the architecture's own final layer. ``cosine`` replaces the final ``nn.Linear``
classifier by :class:`CosineLinear`, whose logits are ``s`` times cosines: LDAM (Cao et al.,
NeurIPS 2019) is defined on such logits (their code's ``NormedLinear``, switched on whenever the
loss is LDAM), since its class margins (at most 0.5) are in cosine units and ``s = 30``
rescales them. On an unnormalised head the margins mean nothing and ``s`` multiplies logits
that are already large; that is how our first LDAM-DRW runs of ``cifar_fast`` collapsed when
the re-weighting started (docs/diagnostics-results.md). The scale lives in the head (a buffer
saved with the weights), so the model's logits are what the loss's softmax saw: predicted
probabilities (EL2N, label issues, the app) mean the same as for a linear head.

The head is part of the recipe, so a checkpoint that stores its recipe is rebuilt with the head
it was trained with (:func:`thresher.train.load_checkpoint`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from thresher.errors import ConfigError, ModelError

HEADS = ("linear", "cosine")


class CosineLinear(nn.Module):
    """Logits ``scale * cos(x, w_k)``: features ``(B, F)`` -> ``(B, K)`` in [-scale, scale].

    ``weight`` is ``(K, F)`` like :class:`torch.nn.Linear`'s (no bias) and starts as
    nn.Linear's does; ``scale`` is a buffer, stored with the weights.
    """

    scale: torch.Tensor

    def __init__(self, in_features: int, out_features: int, *, scale: float = 1.0) -> None:
        super().__init__()
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"the cosine head's scale must be > 0, got {scale!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cosine = F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))
        return cosine * self.scale.to(cosine.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"scale={float(self.scale):g}"
        )


def check_head(head: str) -> str:
    """``head`` when it is one of :data:`HEADS`; a clear error otherwise."""
    if head not in HEADS:
        raise ConfigError(f"unknown classifier head {head!r}; use one of {', '.join(HEADS)}")
    return head


def with_head(model: nn.Module, head: str, *, num_classes: int, scale: float = 1.0) -> nn.Module:
    """``model`` with the classifier ``head`` (changed in place and returned).

    ``cosine`` replaces the last ``nn.Linear`` with ``num_classes`` outputs by a
    :class:`CosineLinear` of the same shape and ``scale`` (its weights drawn from the global RNG,
    like a fresh layer), and sets a ``logit_scale`` attribute to 1 where the model has one
    (``cifar_fast`` scales its logits by 1/9 for cross-entropy; the head's ``scale`` replaces it).
    """
    if check_head(head) == "linear":
        return model
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module.out_features == num_classes
    ]
    if not found:
        raise ModelError(
            f"the cosine head replaces the final nn.Linear classifier with {num_classes} outputs, "
            f"and {type(model).__name__} has none; train it with head='linear', or give the "
            "model such a layer"
        )
    name, last = found[-1]
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    cosine = CosineLinear(last.in_features, last.out_features, scale=scale)
    cosine = cosine.to(last.weight.device)
    setattr(parent, attr, cosine)
    if isinstance(getattr(model, "logit_scale", None), float):
        setattr(model, "logit_scale", 1.0)  # noqa: B010  (a plain float attribute)
    return model
