"""A fast CIFAR net for experiments on CPUs, in the spirit of airbench (Jordan 2024).

airbench ("94% on CIFAR-10 in 3.29 seconds" on an A100) reaches its speed with a small VGG-like
net, batch norm, a frozen first layer that whitens 2x2 patches, label smoothing, weight
averaging and flip test-time augmentation. This is our own, simpler reading of those ideas,
written for Thresher's trainer: plain SGD-Nesterov with a linear one-cycle schedule, an
exponential moving average of the weights (``Recipe.ema_decay``) instead of airbench's
lookahead, and the whitening layer fitted from the training images by
:meth:`CifarFast.init_from_data`, which :func:`thresher.train.fit` calls before the first step.

Widths: airbench uses 64/256/256; on a 2-core CPU in bf16 that costs about 120 s an epoch of
50,000 images (``benchmarks/bench_precision.py``), so the registered default is 64/128/256
(about 75 s an epoch) and ``cifar_fast_wide`` keeps airbench's widths.
"""

from __future__ import annotations

import torch
from torch import nn

from thresher.errors import DataError
from thresher.models.registry import register_model
from thresher.models.resnet_cifar import CIFAR10_MEAN, CIFAR10_STD

WHITEN_PATCH = 2  # 2x2 patches: 4 * C dimensions, whitened by their covariance's eigenvectors
WHITEN_SAMPLES = 5000  # images whose patches estimate the covariance (as airbench)
WHITEN_EPS = 5e-4
# Batch-norm running statistics follow the batches fast (PyTorch momentum 0.4, as airbench):
# a run of a few hundred steps otherwise ends with statistics that lag the weights, and the
# eval-mode accuracy falls far below the training accuracy.
BN_MOMENTUM = 0.4


class CifarFast(nn.Module):
    """whiten (2x2, frozen) -> 3 x [conv-pool-BN-GELU-conv-BN-GELU] -> global max pool -> FC.

    ``pool`` (the globally pooled, flattened features) is the embedding layer. Inputs are
    normalised images ``(B, C, H, W)`` with ``H, W >= 16``; outputs ``(B, num_classes)`` logits.
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        widths: tuple[int, int, int] = (64, 128, 256),
        logit_scale: float = 1 / 9,
        airbench_init: bool = False,
    ) -> None:
        super().__init__()
        whiten_width = 2 * in_channels * WHITEN_PATCH * WHITEN_PATCH
        self.whiten = nn.Conv2d(in_channels, whiten_width, WHITEN_PATCH, bias=True)
        # Frozen: its weights come from the data (init_from_data); only the bias trains.
        self.whiten.weight.requires_grad_(False)
        self.act0 = nn.GELU()
        blocks = []
        width_in = whiten_width
        for width in widths:
            blocks.append(_block(width_in, width, airbench_init=airbench_init))
            width_in = width
        self.blocks = nn.Sequential(*blocks)
        self.gmp = nn.AdaptiveMaxPool2d(1)
        self.pool = nn.Flatten()
        self.fc = nn.Linear(width_in, num_classes, bias=False)
        # airbench scales its logits down (1/9): with label smoothing and a high learning rate
        # it keeps the early steps from saturating the softmax.
        self.logit_scale = float(logit_scale)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Set the whitening filters from normalised training images ``(N, C, H, W)``.

        The filters are the eigenvectors of the 2x2-patch covariance, scaled by
        ``1 / sqrt(eigenvalue + eps)``, each in both signs (so GELU keeps both halves).
        Deterministic: the same images give the same filters.
        """
        if x.ndim != 4 or x.shape[1] != self.whiten.in_channels:
            raise DataError(
                f"whitening needs (N, {self.whiten.in_channels}, H, W) images, got {tuple(x.shape)}"
            )
        x = x[:WHITEN_SAMPLES].float()
        c, p = x.shape[1], WHITEN_PATCH
        patches = x.unfold(2, p, 1).unfold(3, p, 1)  # (N, C, H', W', p, p)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * p * p).double()
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / patches.shape[0]
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval.clamp_min(0) + WHITEN_EPS)[:, None]).float()
        filters = filters.reshape(-1, c, p, p)
        weight = torch.cat([filters, -filters], dim=0)
        self.whiten.weight.copy_(weight.to(self.whiten.weight.device))
        assert self.whiten.bias is not None  # built with bias=True
        self.whiten.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.act0(self.whiten(x)))
        return self.fc(self.pool(self.gmp(h))) * self.logit_scale


def _block(width_in: int, width: int, *, airbench_init: bool = False) -> nn.Sequential:
    block = nn.Sequential(
        nn.Conv2d(width_in, width, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
        nn.GELU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
        nn.GELU(),
    )
    if airbench_init:
        for layer in block:
            if isinstance(layer, nn.Conv2d):
                # The first filters pass their input channel through (identity, "dirac"), the
                # others keep the default random init: the block starts near the identity.
                with torch.no_grad():
                    n = min(layer.in_channels, layer.out_channels)
                    nn.init.dirac_(layer.weight[:n])
            elif isinstance(layer, nn.BatchNorm2d):
                # Only the shift trains; the scale stays 1 (the next conv can rescale).
                layer.weight.requires_grad_(False)
    return block


@register_model(
    "cifar_fast",
    input_size=(32, 32),
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    recipe="cifar-fast",
    feature_layer="pool",
    test_time_flip=True,
    description="Fast CIFAR net (airbench-like: whitening, 64/128/256, flip TTA)",
)
def cifar_fast(*, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The fast CIFAR net at 64/128/256 widths (about 1.2M parameters)."""
    return CifarFast(num_classes=num_classes, in_channels=in_channels)


@register_model(
    "cifar_airbench",
    input_size=(32, 32),
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    recipe="cifar-airbench",
    feature_layer="pool",
    test_time_flip=True,
    description="cifar_fast with airbench's identity init and fixed batch-norm scales",
)
def cifar_airbench(*, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """``cifar_fast`` (64/128/256) with airbench's initialisation: the first filters of each
    3x3 conv start as the identity ("dirac") and batch norm's scales stay fixed at 1, for the
    recipe ``cifar-airbench`` (airbench's optimiser settings)."""
    return CifarFast(num_classes=num_classes, in_channels=in_channels, airbench_init=True)


@register_model(
    "cifar_fast_wide",
    input_size=(32, 32),
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    recipe="cifar-fast",
    feature_layer="pool",
    test_time_flip=True,
    description="Fast CIFAR net at airbench's 64/256/256 widths (flip TTA)",
)
def cifar_fast_wide(*, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The fast CIFAR net at airbench's 64/256/256 widths (about 2M parameters)."""
    return CifarFast(num_classes=num_classes, in_channels=in_channels, widths=(64, 256, 256))
