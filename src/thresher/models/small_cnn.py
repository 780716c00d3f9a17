"""A small CNN for 32x32 colour images that trains in minutes on two CPU cores.

Not from any of the papers: it exists so that comparisons meant for ResNet-32 on a GPU (the
filtering thesis's Table 1) can be run, scaled down and said so, on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from thresher.models.registry import register_model
from thresher.models.resnet_cifar import CIFAR10_MEAN, CIFAR10_STD


@register_model(
    "cifar_small",
    input_size=(32, 32),
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    recipe="cifar-small",
    feature_layer="pool",
    description="Small CNN for 32x32 colour images (3 conv-BN-ReLU-pool stages, 16/32/64 wide)",
)
def cifar_small(*, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """conv16-pool (16x16) -> conv32-pool (8x8) -> conv64-pool (4x4) -> global average pool -> FC.

    About 24k parameters and 2.5M multiply-adds per 32x32 image (a ResNet-32 has 464k and 69M).
    ``pool`` (64-d, after global average pooling) is the embedding layer, like ResNet-32's.
    """
    layers: list[tuple[str, nn.Module]] = []
    width_in = in_channels
    for stage, width in enumerate((16, 32, 64), start=1):
        layers += [
            (f"conv{stage}", nn.Conv2d(width_in, width, kernel_size=3, padding=1, bias=False)),
            (f"bn{stage}", nn.BatchNorm2d(width)),
            (f"relu{stage}", nn.ReLU()),
            (f"pool{stage}", nn.MaxPool2d(2)),
        ]
        width_in = width
    layers += [
        ("gap", nn.AdaptiveAvgPool2d(1)),
        ("pool", nn.Flatten()),
        ("fc", nn.Linear(width_in, num_classes)),
    ]
    return nn.Sequential(OrderedDict(layers))
