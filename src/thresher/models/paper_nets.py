"""The LRP-GUS paper's networks (seed 000, Tables 2 and 3), as plain ``nn.Sequential``s."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from thresher.models.registry import register_model


@register_model(
    "mnist_lenet",
    input_size=(28, 28),
    recipe="paper-mnist",
    feature_layer="flatten",
    description="LRP-GUS Table 2: LeNet-5 variant for 28x28 MNIST (conv32-pool-conv64-pool-drop-fc)",
)
def mnist_lenet(*, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """LRP-GUS Table 2 (MNIST): 26x26x32 -> 13x13x32 -> 11x11x64 -> 5x5x64 -> dropout .5 -> FC."""
    return nn.Sequential(
        _named(
            ("conv1", nn.Conv2d(in_channels, 32, kernel_size=3)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(32, 64, kernel_size=3)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("dropout", nn.Dropout(0.5)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(5 * 5 * 64, num_classes)),
        )
    )


@register_model(
    "fmnist_cnn",
    input_size=(28, 28),
    recipe="paper-fmnist",
    feature_layer="relu3",
    description="LRP-GUS Table 3: CNN with batch norm and dropout for 28x28 Fashion-MNIST",
)
def fmnist_cnn(*, num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """LRP-GUS Table 3 (Fashion-MNIST): conv16(1x1)-conv32-pool-BN-drop-conv64-pool-BN-drop-FC256-drop-FC."""
    return nn.Sequential(
        _named(
            ("conv1", nn.Conv2d(in_channels, 16, kernel_size=1)),
            ("relu1", nn.ReLU()),
            # Table 3 keeps 28x28 after the 3x3 conv, so it is padded ("same").
            ("conv2", nn.Conv2d(16, 32, kernel_size=3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("bn1", nn.BatchNorm2d(32)),
            ("drop1", nn.Dropout(0.2)),
            ("conv3", nn.Conv2d(32, 64, kernel_size=3)),
            ("relu_c3", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("bn2", nn.BatchNorm2d(64)),
            ("drop2", nn.Dropout(0.2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(6 * 6 * 64, 256)),
            ("relu3", nn.ReLU()),
            ("drop3", nn.Dropout(0.2)),
            ("fc2", nn.Linear(256, num_classes)),
        )
    )


def _named(*layers: tuple[str, nn.Module]) -> OrderedDict[str, nn.Module]:
    return OrderedDict(layers)
