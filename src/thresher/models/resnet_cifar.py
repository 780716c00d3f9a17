"""CIFAR ResNet-20/32/56 (He et al. 2016, sec. 4.2) with the option-A (zero-padding) shortcut.

The module tree holds only standard layers plus ``BasicBlock`` and ``PadShortcut``, so code that
rewrites models by module type (the ensemble trainer stacks many models at once) can convert it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from thresher.models.registry import register_model

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
STAGE_WIDTHS = (16, 32, 64)


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad ``pad`` channels on each side.

    ``(B, C, H, W) -> (B, C + 2 * pad, ceil(H / stride), ceil(W / stride))``; no parameters.
    """

    def __init__(self, *, pad: int, stride: int) -> None:
        super().__init__()
        self.pad = int(pad)
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, pad = self.stride, self.pad
        return F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, pad, pad))

    def extra_repr(self) -> str:
        return f"pad={self.pad}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + sc(x))``.

    ``relu`` is one ``nn.ReLU`` module used twice (a hook on it fires twice per forward).
    """

    def __init__(self, *, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        if stride == 1 and in_planes == planes:
            self.shortcut: nn.Module = nn.Identity()
        else:
            # The stage widths double, so the extra channels split evenly on both sides.
            self.shortcut = PadShortcut(pad=(planes - in_planes) // 2, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def cifar_resnet(*, depth: int, num_classes: int = 10, in_channels: int = 3) -> nn.Sequential:
    """A ``6n + 2``-layer CIFAR ResNet as an ``nn.Sequential``.

    Children: ``conv1, bn1, relu, layer1, layer2, layer3, avgpool, flatten, fc``; ``flatten``
    outputs the 64-d penultimate features ``(B, 64)``; ``fc`` gives logits ``(B, num_classes)``.
    Any input size works (global average pooling).
    """
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 with n >= 1, got {depth}")
    n = (depth - 2) // 6
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv1=nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, stride=1, padding=1, bias=False),
        bn1=nn.BatchNorm2d(STAGE_WIDTHS[0]),
        relu=nn.ReLU(),
    )
    in_planes = STAGE_WIDTHS[0]
    for stage, planes in enumerate(STAGE_WIDTHS, start=1):
        blocks = []
        for i in range(n):
            stride = 2 if stage > 1 and i == 0 else 1
            blocks.append(BasicBlock(in_planes=in_planes, planes=planes, stride=stride))
            in_planes = planes
        layers[f"layer{stage}"] = nn.Sequential(*blocks)
    layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    layers["fc"] = nn.Linear(in_planes, num_classes)
    model = nn.Sequential(layers)
    _kaiming_init(model)
    return model


def _kaiming_init(model: nn.Module) -> None:
    # He et al. 2015 init for conv and linear weights, as in the reference CIFAR code.
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight)


def _register(depth: int, params: str) -> None:
    def build(*, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        return cifar_resnet(depth=depth, num_classes=num_classes, in_channels=in_channels)

    build.__name__ = f"resnet{depth}"
    register_model(
        f"resnet{depth}",
        input_size=None,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        recipe="cifar-resnet",
        feature_layer="flatten",
        description=f"He et al. 2016 CIFAR ResNet-{depth} (option-A shortcut, {params} params)",
    )(build)


for _depth, _params in ((20, "0.27M"), (32, "0.46M"), (56, "0.85M")):
    _register(_depth, _params)
