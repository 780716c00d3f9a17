"""Layer listing, layer names and the penultimate-layer default."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from thresher.embed import default_layer, list_layers, resolve_layer
from thresher.errors import LayerError
from thresher.models import create_model, model_spec


def _no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_list_layers_gives_mnist_lenet_output_shapes_and_params() -> None:
    model = create_model("mnist_lenet", num_classes=10)
    layers = {info.name: info for info in list_layers(model, input_shape=(1, 1, 28, 28))}
    assert list(layers) == [
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "dropout", "flatten", "fc",
    ]  # fmt: skip
    assert layers["conv1"].output_shape == (32, 26, 26)
    assert layers["conv1"].num_features == 32 * 26 * 26
    assert layers["conv1"].params == 32 * 9 + 32
    assert layers["conv1"].type == "Conv2d"
    assert layers["pool2"].output_shape == (64, 5, 5)
    assert layers["flatten"].output_shape == (1600,)
    assert layers["fc"].output_shape == (10,)
    assert _no_hooks_left(model)


def test_list_layers_includes_named_containers_and_accepts_chw() -> None:
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()),
            pool=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            head=nn.Linear(4, 2),
        )
    )
    layers = {info.name: info for info in list_layers(model, input_shape=(3, 8, 8))}
    assert layers["features"].is_leaf is False
    assert layers["features"].params == 3 * 4 * 9 + 4
    assert layers["features"].output_shape == (4, 6, 6)
    assert layers["features.0"].is_leaf is True
    assert layers["pool"].output_shape == (4, 1, 1)


def test_list_layers_removes_hooks_and_restores_mode_when_forward_fails() -> None:
    model = create_model("mnist_lenet", num_classes=10)
    model.train()
    with pytest.raises(LayerError, match="input shape"):
        list_layers(model, input_shape=(3, 28, 28))  # the net takes one channel
    assert _no_hooks_left(model)
    assert all(m.training for m in model.modules())


def test_unknown_layer_lists_valid_names_and_suggests_close_match() -> None:
    model = create_model("mnist_lenet", num_classes=10)
    with pytest.raises(LayerError) as err:
        resolve_layer(model, "flaten")
    message = str(err.value)
    assert "did you mean 'flatten'" in message
    for name in ("conv1", "pool2", "fc"):
        assert name in message
    assert resolve_layer(model, "conv2") is model.conv2


def test_default_layer_uses_the_registered_feature_layer() -> None:
    model = create_model("fmnist_cnn", num_classes=10)
    assert default_layer(model, model_spec("fmnist_cnn").feature_layer) == "relu3"
    with pytest.raises(LayerError, match="no layer 'nope'"):
        default_layer(model, "nope")


@pytest.mark.parametrize(
    ("name", "expected"), [("mnist_lenet", "flatten"), ("fmnist_cnn", "relu3")]
)
def test_default_layer_without_spec_is_the_input_of_the_last_linear(
    name: str, expected: str
) -> None:
    # fmnist_cnn: relu3 -> drop3 -> fc2; the eval-mode pass-through dropout is skipped.
    model = create_model(name, num_classes=10)
    assert default_layer(model, input_shape=(1, 28, 28)) == expected
    assert _no_hooks_left(model)


def test_default_layer_finds_avgpool_behind_a_functional_flatten() -> None:
    model = torchvision.models.resnet18(num_classes=3)  # avgpool -> torch.flatten -> fc
    assert default_layer(model, input_shape=(3, 32, 32)) == "avgpool"


def test_default_layer_refuses_a_model_without_linear() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    with pytest.raises(LayerError, match=r"no classifier layer \(nn\.Linear\)"):
        default_layer(model, input_shape=(1, 8, 8))
    with pytest.raises(LayerError, match="input_shape"):
        default_layer(model)


def test_list_layers_uses_the_models_dtype() -> None:
    model = create_model("mnist_lenet", num_classes=10).to(torch.float64)
    assert list_layers(model, input_shape=(1, 28, 28))[-1].output_shape == (10,)


def test_knn_agreement_is_one_on_separated_classes_and_chance_on_shuffled_labels() -> None:
    from thresher.embed.separation import knn_agreement

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    x = rng.normal(size=(200, 8)).astype(np.float32) * 0.1
    x[:, 0] += np.where(labels == 0, 1.0, -1.0)
    assert knn_agreement(x, labels, k=5) == 1.0
    shuffled = rng.permutation(labels)
    assert 0.3 < knn_agreement(x, shuffled, k=5) < 0.7


def test_layers_separation_suggests_a_layer_of_a_run(
    cli: Callable[[list[str]], tuple[int, str, str]], tmp_path: Path
) -> None:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    run = tmp_path / "run"
    train_run(run, data=DataSpec(name="digits", limit=300), model="mnist_lenet", epochs=2)
    code, stdout, stderr = cli(["layers", str(run), "--separation", "--sample", "300", "--json"])
    assert code == 0, stderr
    info = json.loads(stdout)
    agreement = {la["name"]: la["knn_agreement"] for la in info["layers"]}
    assert all(0.0 <= v <= 1.0 for v in agreement.values())
    assert info["best_separation"] == max(agreement, key=agreement.get)
    assert agreement["flatten"] > agreement["conv1"]
    code, _, stderr = cli(["layers", "mnist_lenet", "--separation"])
    assert code == 2
    assert "needs a run directory" in stderr
