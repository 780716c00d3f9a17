"""A zennit canonizer for the CIFAR ResNet blocks of :mod:`thresher.models.resnet_cifar`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer
from zennit.layer import Sum


class CifarBasicBlockCanonizer(AttributeCanonizer):
    """Replace ``BasicBlock.forward`` by one whose residual addition is a ``Sum`` module.

    The block's ``relu`` module is called twice in the original forward; the canonized forward
    uses ``torch.relu`` (its gradient passes relevance where the input is positive, and where it
    is not the output, and so the relevance, is zero), so no hook sees a module twice.
    """

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @classmethod
    def _attribute_map(cls, name: str, module: nn.Module) -> dict[str, Any] | None:
        from thresher.models.resnet_cifar import BasicBlock

        if isinstance(module, BasicBlock):
            return {"forward": cls.forward.__get__(module), "canonizer_sum": Sum()}
        return None

    @staticmethod
    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.canonizer_sum(torch.stack([self.shortcut(x), out], dim=-1))
        return torch.relu(out)
