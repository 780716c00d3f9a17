"""Model registry: paper nets, CIFAR ResNets, torchvision/timm adapters, user modules."""

from thresher.models import cifar_fast as _cifar_fast  # noqa: F401  (registers)
from thresher.models import detection as _detection  # noqa: F401  (registers det_tiny, ...)
from thresher.models import external as _external  # noqa: F401  (registers efficientnet_lite0/1/2)
from thresher.models import paper_nets as _paper_nets  # noqa: F401  (registers)
from thresher.models import resnet_cifar as _resnet_cifar  # noqa: F401  (registers)
from thresher.models import small_cnn as _small_cnn  # noqa: F401  (registers)
from thresher.models.external import external_spec
from thresher.models.fingerprint import model_fingerprint
from thresher.models.layers import default_layer
from thresher.models.loading import (
    LoadedModel,
    feature_layer_of,
    load_weights,
    save_checkpoint,
    wrap_module,
)
from thresher.models.preprocess import InputTransform, transform_for
from thresher.models.registry import (
    MODELS,
    ModelSpec,
    create_model,
    is_detector,
    model_spec,
    register_model,
    uses_test_time_flip,
)
from thresher.models.resnet_cifar import BasicBlock, PadShortcut, cifar_resnet

__all__ = [
    "MODELS",
    "BasicBlock",
    "InputTransform",
    "LoadedModel",
    "ModelSpec",
    "PadShortcut",
    "cifar_resnet",
    "create_model",
    "default_layer",
    "external_spec",
    "feature_layer_of",
    "is_detector",
    "load_weights",
    "model_fingerprint",
    "model_spec",
    "register_model",
    "save_checkpoint",
    "transform_for",
    "uses_test_time_flip",
    "wrap_module",
]
