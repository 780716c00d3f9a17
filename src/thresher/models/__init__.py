"""Model registry: paper nets, CIFAR ResNets, torchvision/timm adapters, user modules."""

from thresher.models import paper_nets as _paper_nets  # noqa: F401  (registers)
from thresher.models.preprocess import InputTransform, transform_for
from thresher.models.registry import MODELS, ModelSpec, create_model, model_spec, register_model

__all__ = [
    "MODELS",
    "InputTransform",
    "ModelSpec",
    "create_model",
    "model_spec",
    "register_model",
    "transform_for",
]
