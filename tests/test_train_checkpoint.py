"""Checkpoints: safetensors round trip that rebuilds the model, clear refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from thresher.data.types import ImageDataset
from thresher.errors import ModelError
from thresher.models import create_model
from thresher.train import (
    Recipe,
    TrainResult,
    checkpoint_info,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def trained() -> tuple[TrainResult, ImageDataset]:
    rng = np.random.default_rng(0)
    ds = ImageDataset(
        images=rng.integers(0, 255, (40, 1, 28, 28), dtype=np.uint8),
        labels=rng.integers(0, 3, 40),
        ids=[f"i{k}" for k in range(40)],
        classes=("a", "b", "c"),
    )
    return fit("fmnist_cnn", ds, recipe=Recipe(batch_size=16, epochs=1), seed=2), ds


def test_a_train_result_round_trips_without_a_template(
    tmp_path: Path, trained: tuple[TrainResult, ImageDataset]
) -> None:
    result, ds = trained
    path = save_checkpoint(result, tmp_path / "model.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left
    info = checkpoint_info(path)
    assert (info["model_name"], info["num_classes"], info["in_channels"], info["seed"]) == (
        "fmnist_cnn",
        3,
        1,
        2,
    )
    assert info["recipe"]["batch_size"] == 16
    loaded = load_checkpoint(path)
    assert not loaded.training
    for key, value in result.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)  # BN running stats included
    np.testing.assert_array_equal(
        predict(loaded, ds, transform="fmnist_cnn"),
        predict(result.model, ds, transform="fmnist_cnn"),
    )


def test_a_plain_module_loads_into_a_given_model(tmp_path: Path) -> None:
    module = create_model("mnist_lenet", num_classes=10)
    path = save_checkpoint(module, tmp_path / "m.safetensors", metadata={"note": "x"})
    assert checkpoint_info(path) == {"note": "x"}
    with pytest.raises(ModelError, match="pass model="):
        load_checkpoint(path)
    target = create_model("mnist_lenet", num_classes=10)
    assert load_checkpoint(path, model=target) is target
    assert torch.equal(target.fc.weight, module.fc.weight)


def test_checkpoint_refusals_name_the_fix(
    tmp_path: Path, trained: tuple[TrainResult, ImageDataset]
) -> None:
    result, _ = trained
    with pytest.raises(ModelError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(ModelError, match="safetensors"):
        save_checkpoint(result, tmp_path / "model.pt")
    path = save_checkpoint(result, tmp_path / "model.safetensors")
    with pytest.raises(ModelError, match="architecture"):
        load_checkpoint(path, model=create_model("mnist_lenet", num_classes=3))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="safetensors"):
        load_checkpoint(bad)
