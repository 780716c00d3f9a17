"""The model registry: ``create_model(name, num_classes=..., in_channels=...)`` (timm's pattern)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from thresher.errors import ConfigError, ModelError
from thresher.registry import Registry

ModelBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """What Thresher needs to know about an architecture besides its weights.

    Attributes:
        name: registry name.
        builder: ``builder(num_classes=int, in_channels=int) -> nn.Module`` returning logits.
        input_size: ``(H, W)`` the architecture needs, or ``None`` when any size works.
        mean, std: per-channel normalisation in [0, 1] pixel units (one value broadcasts).
        recipe: name of the default training recipe in ``thresher.train.RECIPES``.
        feature_layer: the penultimate layer (after pooling, before the classifier).
        description: one line for ``thresher models``.
        test_time_flip: evaluate on each image and its mirror image, averaging the logits
            (flip test-time augmentation; part of how the architecture is meant to be tested).
        task: ``"classification"`` (logits) or ``"detection"`` (a torchvision-style detector:
            ``model(images, targets)`` gives losses when training, boxes when evaluating).
    """

    name: str
    builder: ModelBuilder
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    recipe: str = "paper-mnist"
    feature_layer: str = ""
    description: str = ""
    test_time_flip: bool = False
    task: str = "classification"


TASKS = ("classification", "detection")
MODELS: Registry[ModelSpec] = Registry("model", error=ModelError)


def register_model(
    name: str,
    *,
    input_size: tuple[int, int] | None = None,
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    recipe: str = "paper-mnist",
    feature_layer: str = "",
    description: str = "",
    test_time_flip: bool = False,
    task: str = "classification",
) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder`` under ``name``."""
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")

    def wrap(builder: ModelBuilder) -> ModelBuilder:
        MODELS.register(
            name,
            ModelSpec(
                name=name,
                builder=builder,
                input_size=input_size,
                mean=mean,
                std=std,
                recipe=recipe,
                feature_layer=feature_layer,
                description=description or (builder.__doc__ or "").strip().splitlines()[0],
                test_time_flip=test_time_flip,
                task=task,
            ),
        )
        return builder

    return wrap


def model_spec(name: str) -> ModelSpec:
    """The spec of a registered name, of ``tv:<torchvision name>`` / ``timm:<timm name>``, or
    of the user's own factory ``module:callable`` / ``path/to/file.py:callable``."""
    if name in MODELS:
        return MODELS.get(name)
    if ":" in name:
        from thresher.models.user import is_user_reference, user_spec

        if is_user_reference(name):
            return user_spec(name)
        from thresher.models.external import external_spec

        return external_spec(name)
    try:
        return MODELS.get(name)
    except ModelError as err:
        raise ModelError(
            f"{err}; or tv:<torchvision model>, timm:<timm model>, or your own factory as "
            "module:callable"
        ) from None


def create_model(name: str, *, num_classes: int, in_channels: int = 1) -> nn.Module:
    """Build a fresh, randomly initialised model by registry name."""
    spec = model_spec(name)
    if num_classes < 2:
        raise ConfigError(
            f"num_classes must be >= 2, got {num_classes}; a classifier needs two classes"
        )
    if in_channels < 1:
        raise ConfigError(f"in_channels must be >= 1, got {in_channels}")
    return spec.builder(num_classes=num_classes, in_channels=in_channels)


def is_detector(model: object) -> bool:
    """Whether a model, given by registry name, is a detector."""
    return isinstance(model, str) and model_spec(model).task == "detection"


def uses_test_time_flip(model: object) -> bool:
    """Whether a model, given by registry name, is evaluated with flip test-time augmentation
    (a user module or builder is not)."""
    return isinstance(model, str) and model_spec(model).test_time_flip
