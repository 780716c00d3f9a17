"""Every registered model builds, forwards a batch and exposes its penultimate features."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thresher.models import MODELS, create_model, default_layer, model_spec
from thresher.train.recipes import RECIPES

CLASSIFIERS = [n for n in MODELS.names() if MODELS.get(n).task == "classification"]
DETECTORS = [n for n in MODELS.names() if MODELS.get(n).task == "detection"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_registered_model_forwards_and_taps_features(name: str) -> None:
    spec = model_spec(name)
    assert spec.recipe in RECIPES
    assert spec.description
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).eval()
    x = torch.rand(2, 1, *(spec.input_size or (32, 32)))
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(spec.feature_layer).register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().clone())
    )
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    # The feature layer is the penultimate one: its flattened output feeds the last Linear.
    assert captured[-1].flatten(1).shape == (2, classifier.in_features)
    assert model(x).shape == (2, 10)  # eval mode: deterministic and repeatable
    del handle


@pytest.mark.parametrize("name", DETECTORS)
def test_registered_detector_answers_boxes_and_taps_its_head_input(name: str) -> None:
    spec = model_spec(name)
    assert spec.recipe in RECIPES
    assert spec.description
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_channels=1).eval()
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(spec.feature_layer).register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().clone())
    )
    try:
        with torch.no_grad():
            found = model(list(torch.rand(2, 1, 64, 64)))
    finally:
        handle.remove()
    assert len(found) == 2
    assert set(found[0]) >= {"boxes", "scores", "labels"}
    assert captured[-1].ndim == 2
    assert captured[-1].shape[0] == 2  # pooled per image
    assert torch.isfinite(captured[-1]).all()


def test_registered_feature_layers_match_the_classifier_input() -> None:
    for name in ("mnist_lenet", "resnet20", "efficientnet_lite0"):
        spec = model_spec(name)
        model = create_model(name, num_classes=10, in_channels=1)
        found = default_layer(model, example=torch.rand(2, 1, *(spec.input_size or (32, 32))))
        assert found == spec.feature_layer, name
