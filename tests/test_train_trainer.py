"""The fast trainer: learns, deterministic, index subsets, augmentation, prediction."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data.idx import load_idx
from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError, ModelError
from thresher.models import InputTransform, create_model
from thresher.train import Recipe, fit, get_recipe, predict
from thresher.train.augment import augment_batch, random_crop, random_flip
from thresher.train.trainer import batch_bounds

TINY = Recipe(batch_size=32, epochs=1)


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> tuple[ImageDataset, ImageDataset]:
    return load_idx(data_root / "mnist", split="train"), load_idx(data_root / "mnist", split="test")


def _synthetic(n: int, *, channels: int = 1, size: int = 28, classes: int = 4) -> ImageDataset:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    images = rng.integers(0, 60, (n, channels, size, size)).astype(np.uint8)
    images[np.arange(n), :, (labels * 5 + 2) % size, 1 : size - 2] = 250
    return ImageDataset(images=images, labels=labels, ids=[f"s{i}" for i in range(n)])


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_learns_real_mnist(mnist: tuple[ImageDataset, ImageDataset]) -> None:
    train, test = mnist
    recipe = get_recipe("paper-mnist").replace(epochs=1)
    result = fit("mnist_lenet", train, recipe=recipe, indices=np.arange(512), seed=0)
    logits = predict(result.model, test.images[:1000], transform="mnist_lenet")
    assert logits.shape == (1000, 10)
    accuracy = float((logits.argmax(1) == test.labels[:1000]).mean())
    assert accuracy > 0.3  # chance is 0.1; 8 steps on 512 images reach about 0.5
    (epoch,) = result.history
    assert epoch.epoch == 1
    assert np.isfinite(epoch.loss)
    assert epoch.images_per_s > 0
    assert 0.0 <= epoch.accuracy <= 1.0
    assert (result.num_train, result.model_name, result.device) == (512, "mnist_lenet", "cpu")
    assert not result.model.training
    assert all(p.device.type == "cpu" for p in result.model.parameters())


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    ds = _synthetic(48)
    recipe = TINY.replace(batch_size=16, augment=("crop", "flip"))
    a = fit("fmnist_cnn", ds, recipe=recipe, seed=3)  # dropout, batch norm, augmentation
    b = fit("fmnist_cnn", ds, recipe=recipe, seed=3)
    c = fit("fmnist_cnn", ds, recipe=recipe, seed=4)
    assert _same_weights(a.model, b.model)
    assert a.history[0].loss == b.history[0].loss
    assert not _same_weights(a.model, c.model)


def test_fit_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit("mnist_lenet", _synthetic(40), recipe=TINY, seed=9)
    assert torch.equal(torch.rand(3), expected)


def test_training_on_indices_equals_training_on_that_subset() -> None:
    ds = _synthetic(100)
    idx = np.array([5, 90, 3, 41, 42, 7, 60, 61, 62, 11, 12, 99, 0, 1, 2, 50, 51, 52, 70, 71])
    via_indices = fit("mnist_lenet", ds, recipe=TINY.replace(batch_size=8), indices=idx)
    via_take = fit("mnist_lenet", ds.take(idx), recipe=TINY.replace(batch_size=8))
    assert via_indices.num_train == 20
    assert _same_weights(via_indices.model, via_take.model)


def test_a_given_module_is_copied_not_changed() -> None:
    module = create_model("mnist_lenet", num_classes=4)
    before = copy.deepcopy(module.state_dict())
    result = fit(module, _synthetic(40), recipe=TINY)
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert not _same_weights(result.model, module)
    assert result.model_name is None


def test_fit_refuses_what_it_cannot_train() -> None:
    ds = _synthetic(40)
    unlabelled = ImageDataset(images=ds.images, labels=None, ids=ds.ids)
    with pytest.raises(DataError, match="unlabelled"):
        fit("mnist_lenet", unlabelled, recipe=TINY)
    with pytest.raises(DataError, match="empty"):
        fit("mnist_lenet", ds, recipe=TINY, indices=np.array([], dtype=np.int64))
    with pytest.raises(DataError, match="outside"):
        fit("mnist_lenet", ds, recipe=TINY, indices=[0, 40])
    with pytest.raises(DataError, match="repeats"):
        fit("mnist_lenet", ds, recipe=TINY, indices=[1, 1])
    with pytest.raises(ConfigError, match="recipe"):
        fit(create_model("mnist_lenet", num_classes=4), ds)
    with pytest.raises(ModelError, match="unknown model"):
        fit("lenet", ds, recipe=TINY)
    with pytest.raises(ConfigError, match="diverged"):
        fit("mnist_lenet", ds, recipe=Recipe(optimizer="sgd", lr=1e12, batch_size=8, epochs=1))


def test_a_last_batch_of_one_joins_the_one_before() -> None:
    assert batch_bounds(65, 64) == [(0, 65)]
    assert batch_bounds(64, 64) == [(0, 64)]
    assert batch_bounds(129, 64) == [(0, 64), (64, 129)]
    assert batch_bounds(1, 64) == [(0, 1)]
    result = fit("fmnist_cnn", _synthetic(33), recipe=TINY.replace(batch_size=16))  # batch norm
    assert np.isfinite(result.history[0].loss)


def test_cifar_recipe_trains_a_resnet_with_its_schedule() -> None:
    ds = _synthetic(32, channels=3, size=12)  # the CIFAR ResNets take any size
    recipe = get_recipe("cifar-resnet").replace(epochs=2, batch_size=16)
    result = fit("resnet20", ds, recipe=recipe, seed=1)
    assert [e.lr for e in result.history] == pytest.approx(
        [recipe.lr_at(1, steps_per_epoch=2), recipe.lr_at(3, steps_per_epoch=2)]
    )
    assert result.history[-1].lr < result.history[0].lr < recipe.lr  # cosine decay


def test_random_crop_shifts_each_image_within_the_padding() -> None:
    x = torch.arange(6 * 2 * 5 * 5, dtype=torch.int64).reshape(6, 2, 5, 5) + 1
    out = random_crop(x, padding=2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = set()
    for i in range(6):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 5, dx : dx + 5])
        ]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 1
    again = random_crop(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_translate_shifts_by_up_to_two_pixels_into_a_mirrored_border() -> None:
    x = torch.arange(40 * 5 * 5, dtype=torch.uint8).reshape(40, 1, 5, 5)
    out = augment_batch(x, ("translate",), generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    # Reflect padding (no black border): every crop is a window of the mirrored image.
    padded = torch.nn.functional.pad(x.float(), (2, 2, 2, 2), mode="reflect")
    shifts = set()
    for i in range(40):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i].float(), padded[i, :, dy : dy + 5, dx : dx + 5])
        ]
        assert found, i
        shifts.add(found[0])
    assert len(shifts) > 10  # 25 possible offsets, drawn at random


def test_random_flip_mirrors_about_half_the_images() -> None:
    x = torch.rand(400, 1, 4, 4)
    out = random_flip(x, generator=torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(out[i], x[i].flip(-1)) for i in range(400)])
    kept = torch.tensor([torch.equal(out[i], x[i]) for i in range(400)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_predict_matches_a_plain_forward_and_restores_the_model() -> None:
    ds = _synthetic(10)
    model = create_model("fmnist_cnn", num_classes=4).train()
    tf = InputTransform(mean=(0.1,), std=(0.3,))
    logits = predict(model, ds, transform=tf, batch_size=3)
    assert model.training  # put back as it was
    model.eval()
    with torch.no_grad():
        direct = model(tf(torch.from_numpy(ds.images))).numpy()
    np.testing.assert_allclose(logits, direct, atol=1e-5)
    np.testing.assert_allclose(predict(model, ds.images, transform=tf), logits, atol=1e-5)
    with pytest.raises(DataError, match="channel"):
        predict(model, ds.images[:, 0], transform=tf)
