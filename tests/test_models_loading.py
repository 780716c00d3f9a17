"""User modules and checkpoints: wrap, find the feature layer, load/save safely, fingerprint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from thresher.errors import LayerError, ModelError
from thresher.models import (
    create_model,
    feature_layer_of,
    load_weights,
    model_fingerprint,
    model_spec,
    save_checkpoint,
    wrap_module,
)
from thresher.models.layers import default_layer
from thresher.models.loading import fresh_copy


def _small_net(num_classes: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


class _FunctionalHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class _Payload:
    """Unpickling this would create ``path`` (a directory): proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.makedirs, (str(self.path),))


def _perturbed(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


# --- checkpoints ------------------------------------------------------------------------------


def test_safetensors_roundtrip_restores_outputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("resnet20", num_classes=10, in_channels=3)
    source.train()(torch.rand(8, 3, 32, 32))  # move BN running statistics off their defaults
    path = save_checkpoint(source, tmp_path / "w.safetensors")
    assert path.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temp file left

    target = create_model("resnet20", num_classes=10, in_channels=3)
    assert model_fingerprint(target) != model_fingerprint(source)
    assert load_weights(target, path) is target
    assert model_fingerprint(target) == model_fingerprint(source)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target.eval()(x), source.eval()(x))


def test_weights_only_pt_roundtrip_and_nested_and_dataparallel(tmp_path: Path) -> None:
    source = _perturbed(_small_net())
    plain = tmp_path / "plain.pt"
    nested = tmp_path / "nested.pth"
    prefixed = tmp_path / "prefixed.pt"
    torch.save(source.state_dict(), plain)
    torch.save({"epoch": 3, "state_dict": source.state_dict()}, nested)
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, prefixed)
    for path in (plain, nested, prefixed):
        target = load_weights(_small_net(), path)
        assert model_fingerprint(target) == model_fingerprint(source), path.name


def test_pickle_with_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Payload(marker)}, path)
    with pytest.raises(ModelError, match=r"refusing to load .*evil\.pt.*weights_only=True"):
        load_weights(_small_net(), path)
    assert not marker.exists()


def test_key_mismatch_lists_missing_and_unexpected_keys(tmp_path: Path) -> None:
    state = _small_net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["5.bias"]
    path = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file(state, str(path))
    with pytest.raises(ModelError, match=r"1 missing \(5\.bias\).*1 unexpected \(extra\.weight\)"):
        load_weights(_small_net(), path)


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path: Path) -> None:
    path = save_checkpoint(_small_net(num_classes=5), tmp_path / "five.safetensors")
    with pytest.raises(ModelError, match=r"'5\.weight'.*\(5, 4\).*expects \(3, 4\)"):
        load_weights(_small_net(num_classes=3), path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("w.ckpt", b"x", "unknown checkpoint type '.ckpt'"),
        ("w.safetensors", b"not safetensors", "cannot read .* as safetensors"),
        ("w.pt", b"garbage", "refusing to load"),
    ],
)
def test_bad_files_give_model_errors(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        load_weights(_small_net(), path)
    assert path.read_bytes() == content  # the user's file is untouched


def test_missing_file_and_pt_without_state_dict(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_weights(_small_net(), tmp_path / "nope.pt")
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelError, match="holds no state dict"):
        load_weights(_small_net(), path)


def test_tied_weights_save_and_load(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    model[1].weight = model[0].weight
    path = save_checkpoint(model, tmp_path / "tied.safetensors")
    fresh = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    load_weights(fresh, path)
    torch.testing.assert_close(fresh[1].weight, model[0].weight)


def test_save_checkpoint_needs_safetensors_suffix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"\.safetensors"):
        save_checkpoint(_small_net(), tmp_path / "w.pt")


# --- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_tracks_every_value_and_buffer() -> None:
    model = _small_net()
    base = model_fingerprint(model)
    assert len(base) == 64
    assert model_fingerprint(model) == base
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    changed = model_fingerprint(model)
    assert changed != base
    model[1].running_mean[0] = 0.5  # buffers change embeddings too
    assert model_fingerprint(model) != changed
    assert model_fingerprint(model.to(torch.float64)) != model_fingerprint(model.float())


# --- user modules -----------------------------------------------------------------------------


def test_wrap_module_finds_features_and_builds_fresh_copies() -> None:
    torch.manual_seed(0)
    net = _small_net()
    loaded = wrap_module(net, name="tiny", mean=(0.5,), std=(0.25,))
    assert loaded.module is net
    assert loaded.spec.feature_layer == "4"  # the Flatten feeding the Linear
    assert loaded.spec.mean == (0.5,)
    fresh = loaded.spec.builder(num_classes=3, in_channels=1)
    assert fresh is not net
    assert not torch.equal(fresh[0].weight, net[0].weight)  # re-initialised
    assert [type(m) for m in fresh.modules()] == [type(m) for m in net.modules()]
    with pytest.raises(ModelError, match="outputs 3 classes, not 10"):
        loaded.spec.builder(num_classes=10, in_channels=1)
    with pytest.raises(ModelError, match="takes 1 input channels, not 3"):
        fresh_copy(net, num_classes=3, in_channels=3)


def test_wrap_module_with_fixed_input_size_uses_it_for_the_trial_pass() -> None:
    lenet = create_model("mnist_lenet", num_classes=10, in_channels=1)  # needs exactly 28 x 28
    loaded = wrap_module(lenet, input_size=(28, 28))
    assert loaded.spec.feature_layer == model_spec("mnist_lenet").feature_layer
    with pytest.raises(LayerError, match="trial forward pass"):
        wrap_module(lenet)  # 32 x 32 by default: the flatten size is wrong


def test_wrap_module_rejects_bad_inputs() -> None:
    with pytest.raises(ModelError, match=r"expected a torch\.nn\.Module"):
        wrap_module("resnet20")  # type: ignore[arg-type]
    with pytest.raises(LayerError, match=r"no layer 'flaten'; did you mean"):
        wrap_module(create_model("resnet20", num_classes=10), feature_layer="flaten")


def test_penultimate_layer_of_functional_head_is_refused() -> None:
    with pytest.raises(LayerError, match="computed outside any module"):
        default_layer(_FunctionalHead(), input_shape=(3, 32, 32))
    loaded = wrap_module(_FunctionalHead(), feature_layer="conv")
    assert loaded.spec.feature_layer == "conv"


def test_penultimate_layer_restores_training_mode() -> None:
    net = _small_net().train()
    default_layer(net, input_shape=(1, 32, 32))
    assert net.training


def test_feature_layer_of_prefers_the_spec() -> None:
    model = create_model("fmnist_cnn", num_classes=10, in_channels=1)
    spec = model_spec("fmnist_cnn")
    # relu3 is after fc1; the last Linear reads drop3, which hands relu3 on unchanged in eval
    assert feature_layer_of(model, spec) == "relu3"
    assert default_layer(model, example=torch.rand(2, 1, 28, 28)) == "relu3"
