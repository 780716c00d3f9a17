"""LRP composites and canonizers found by name (zennit's own composites, our defaults).

A *composite* maps layer types to LRP rules; a *canonizer* rewrites a model into an equivalent
one that the rules handle (batch norm merged into the layer before it; residual additions made
explicit ``Sum`` modules). Both registries hold factories, so each call gets fresh objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from thresher.errors import ConfigError
from thresher.registry import Registry

CompositeFactory = Callable[..., Any]  # (epsilon=, canonizers=) -> zennit Composite
CanonizerFactory = Callable[[nn.Module], list[Any]]  # model -> zennit canonizers

COMPOSITES: Registry[CompositeFactory] = Registry("LRP composite", error=ConfigError)
CANONIZERS: Registry[CanonizerFactory] = Registry("LRP canonizer", error=ConfigError)


# --- composites -------------------------------------------------------------------------------
@COMPOSITES.decorator("epsilon")
def epsilon_composite(*, epsilon: float = 1e-4, canonizers: list[Any] | None = None) -> Any:
    """LRP-epsilon on every layer (the LRP-GUS paper's choice for its small nets).

    Convolutions, linear layers and batch norms that no canonizer could merge (an affine layer
    with a bias) all use the epsilon rule; activations pass relevance through; sums and average
    pools split it in proportion to their inputs; max pools route it to the maximum (gradient).
    """
    from thresher.explain.rules import FastEpsilon

    return _epsilon_everywhere(FastEpsilon(epsilon=epsilon), canonizers, hook_relu=False)


@COMPOSITES.decorator("epsilon_zennit")
def epsilon_zennit_composite(*, epsilon: float = 1e-4, canonizers: list[Any] | None = None) -> Any:
    """As ``epsilon`` with zennit's own (slower, re-evaluating) ``Epsilon`` rule."""
    from zennit.rules import Epsilon

    return _epsilon_everywhere(Epsilon(epsilon=epsilon), canonizers)


def _epsilon_everywhere(rule: Any, canonizers: list[Any] | None, *, hook_relu: bool = True) -> Any:
    from zennit.composites import LayerMapComposite
    from zennit.layer import Sum
    from zennit.rules import Norm, Pass
    from zennit.types import Activation, AvgPool, BatchNorm, Convolution

    # ReLU's own gradient passes relevance where its input is positive; elsewhere its output,
    # and so the relevance the epsilon rule above assigns it, is zero: Pass gives the same
    # maps, and leaving ReLUs unhooked saves a copy of every activation
    layer_map: list[tuple[Any, Any]] = [] if hook_relu else [(torch.nn.ReLU, None)]
    layer_map += [
        (Activation, Pass()),
        (Sum, Norm()),
        (AvgPool, Norm()),
        (Convolution, rule),
        (torch.nn.Linear, rule),
        (BatchNorm, rule),
    ]
    return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)


@COMPOSITES.decorator("epsilon_plus")
def epsilon_plus_composite(*, epsilon: float = 1e-4, canonizers: list[Any] | None = None) -> Any:
    """zennit's EpsilonPlus: z+ on convolutions, epsilon on dense layers."""
    from zennit.composites import EpsilonPlus

    return EpsilonPlus(epsilon=epsilon, canonizers=canonizers)


@COMPOSITES.decorator("epsilon_plus_flat")
def epsilon_plus_flat_composite(
    *, epsilon: float = 1e-4, canonizers: list[Any] | None = None
) -> Any:
    """zennit's EpsilonPlusFlat: flat rule on the first layer, z+ on convolutions, epsilon on
    dense layers (the recommended composite for deep convolutional nets)."""
    from zennit.composites import EpsilonPlusFlat

    return EpsilonPlusFlat(epsilon=epsilon, canonizers=canonizers)


@COMPOSITES.decorator("epsilon_alpha2_beta1")
def epsilon_alpha2_beta1_composite(
    *, epsilon: float = 1e-4, canonizers: list[Any] | None = None
) -> Any:
    """zennit's EpsilonAlpha2Beta1: alpha2-beta1 on convolutions, epsilon on dense layers."""
    from zennit.composites import EpsilonAlpha2Beta1

    return EpsilonAlpha2Beta1(epsilon=epsilon, canonizers=canonizers)


@COMPOSITES.decorator("epsilon_gamma_box")
def epsilon_gamma_box_composite(
    *,
    epsilon: float = 1e-4,
    canonizers: list[Any] | None = None,
    low: float = -3.0,
    high: float = 3.0,
) -> Any:
    """zennit's EpsilonGammaBox: z-box on the first layer (input bounds ``low``/``high`` in
    model-input units, i.e. after normalisation), gamma on convolutions, epsilon on dense."""
    from zennit.composites import EpsilonGammaBox

    return EpsilonGammaBox(low=low, high=high, epsilon=epsilon, canonizers=canonizers)


# --- canonizers -------------------------------------------------------------------------------
@CANONIZERS.decorator("none")
def no_canonizer(model: nn.Module) -> list[Any]:
    """Use the model as it is (batch norms keep their own rule)."""
    return []


@CANONIZERS.decorator("merge_bn")
def merge_bn_canonizer(model: nn.Module) -> list[Any]:
    """Merge each batch norm that directly follows a conv/linear layer into that layer."""
    from zennit.canonizers import SequentialMergeBatchNorm

    return [SequentialMergeBatchNorm()]


@CANONIZERS.decorator("resnet_cifar")
def resnet_cifar_canonizer(model: nn.Module) -> list[Any]:
    """Merge batch norms and make the residual sum of the CIFAR ResNet blocks an explicit
    ``Sum`` module (so the sum splits relevance by contribution, not as a plain gradient)."""
    from thresher.explain.resnet_canonizer import CifarBasicBlockCanonizer

    return [*merge_bn_canonizer(model), CifarBasicBlockCanonizer()]


@CANONIZERS.decorator("auto")
def auto_canonizer(model: nn.Module) -> list[Any]:
    """``resnet_cifar`` when the model holds CIFAR ResNet blocks, else ``merge_bn``."""
    from thresher.models.resnet_cifar import BasicBlock

    if any(isinstance(m, BasicBlock) for m in model.modules()):
        return resnet_cifar_canonizer(model)
    return merge_bn_canonizer(model)


def make_composite(
    name: str = "epsilon",
    *,
    model: nn.Module,
    epsilon: float = 1e-4,
    canonizer: str = "auto",
) -> Any:
    """A fresh zennit composite ``name`` with the canonizers ``canonizer`` chose for ``model``."""
    if not epsilon > 0:
        raise ConfigError(f"epsilon must be > 0, got {epsilon!r}; the paper uses 1e-4")
    factory = COMPOSITES.get(name)
    return factory(epsilon=epsilon, canonizers=CANONIZERS.get(canonizer)(model))
