"""The fast CIFAR net: data whitening, weight averaging, flip test-time augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data import load_dataset
from thresher.errors import ConfigError, DataError
from thresher.models import (
    InputTransform,
    create_model,
    model_spec,
    transform_for,
    uses_test_time_flip,
)
from thresher.models.cifar_fast import WHITEN_EPS
from thresher.train import Recipe, fit, get_recipe, predict, train_many
from thresher.train.trainer import WeightAverage


def test_whitening_filters_decorrelate_the_training_patches() -> None:
    # Analytic: the filters are eigenvectors scaled by 1/sqrt(lambda + eps), so the patches'
    # responses have covariance diag(lambda / (lambda + eps)): ~identity for large eigenvalues.
    gen = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=gen)
    patches = torch.randn(4000, 12, generator=gen) @ mix  # correlated 2x2x3 patches
    images = patches.reshape(4000, 2, 2, 3).permute(0, 3, 1, 2).contiguous()  # (N, 3, 2, 2)
    net = create_model("cifar_fast", num_classes=10, in_channels=3)
    net.init_from_data(images)
    w = net.whiten.weight.detach().double()
    assert w.shape == (24, 3, 2, 2)
    assert torch.equal(w[:12], -w[12:])  # both signs, so the GELU keeps both halves
    resp = images.double().flatten(1) @ w[:12].flatten(1).T
    resp = resp - resp.mean(0)
    cov = resp.T @ resp / len(resp)
    eig = torch.linalg.eigvalsh(
        (patches - patches.mean(0)).double().T @ (patches - patches.mean(0)).double() / 4000
    )
    expected = torch.diag(torch.sort(eig / (eig + WHITEN_EPS)).values)
    assert torch.allclose(cov, expected, atol=1e-4)
    assert float(net.whiten.bias.detach().abs().max()) == 0.0
    assert not net.whiten.weight.requires_grad  # frozen: only its bias trains


def test_whitening_refuses_images_of_the_wrong_shape() -> None:
    net = create_model("cifar_fast", num_classes=10, in_channels=3)
    with pytest.raises(DataError, match=r"whitening needs \(N, 3, H, W\) images"):
        net.init_from_data(torch.rand(4, 1, 32, 32))


def test_weight_average_follows_its_warmed_up_decay() -> None:
    net = nn.Linear(1, 1, bias=False)
    avg = WeightAverage(net, decay=0.5)
    values = [2.0, 4.0, 8.0]
    expected = 0.0
    for t, v in enumerate(values):
        with torch.no_grad():
            net.weight.fill_(v)
        avg.update(net)
        # AveragedModel copies on its first update; then d_t = min(0.5, (1 + t') / (10 + t')).
        if t == 0:
            expected = v
        else:
            d = min(0.5, (1 + t) / (10 + t))
            expected = d * expected + (1 - d) * v
    assert float(avg.module.weight.detach()) == pytest.approx(expected)


def test_linear_schedule_warms_up_then_falls_to_zero() -> None:
    rec = Recipe(lr=1.0, epochs=4, warmup_epochs=1, schedule="linear")
    assert rec.lr_at(0, steps_per_epoch=2) == pytest.approx(0.5)
    assert rec.lr_at(1, steps_per_epoch=2) == pytest.approx(1.0)
    assert rec.lr_at(2, steps_per_epoch=2) == pytest.approx(1.0)
    assert rec.lr_at(5, steps_per_epoch=2) == pytest.approx(0.5)
    assert rec.lr_at(8, steps_per_epoch=2) == 0.0


def test_recipe_refuses_a_bad_ema_decay() -> None:
    with pytest.raises(ConfigError, match=r"ema_decay must be in \[0, 1\)"):
        Recipe(ema_decay=1.0)


def test_flip_test_time_augmentation_averages_the_mirror_images() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3, 2))  # not mirror-symmetric
    x = torch.rand(5, 1, 2, 3)
    tf = InputTransform()
    plain = predict(net, x, transform=tf)
    mirrored = predict(net, x.flip(-1), transform=tf)
    both = predict(net, x, transform=tf, test_time_flip=True)
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-6, atol=1e-6)
    assert uses_test_time_flip("cifar_fast")
    assert not uses_test_time_flip("cifar_small")
    assert not uses_test_time_flip(net)  # a user's module: no augmentation it did not ask for


@pytest.fixture(scope="module")
def cifar_bits(data_root: Path) -> tuple:
    train = load_dataset("cifar10", split="train", root=data_root, limit=1000, seed=0)
    test = load_dataset("cifar10", split="test", root=data_root, limit=500, seed=0)
    return train, test


def test_cifar_fast_learns_real_cifar_deterministically(cifar_bits: tuple) -> None:
    train, test = cifar_bits
    rec = get_recipe("cifar-fast").replace(epochs=3, warmup_epochs=1, batch_size=128)
    a = fit("cifar_fast", train, recipe=rec, seed=1)
    b = fit("cifar_fast", train, recipe=rec, seed=1)
    for (k, va), vb in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k
    tf = transform_for("cifar_fast")
    acc = predict(a.model, test, transform=tf, test_time_flip=True).argmax(1) == test.labels
    # 1,000 images, 3 epochs: well above chance (0.10) but far from converged.
    assert acc.mean() > 0.25
    # The whitening layer was fitted to the data before training (not left at random init).
    fresh = create_model("cifar_fast", num_classes=10, in_channels=3)
    assert not torch.allclose(a.model.whiten.weight, fresh.whiten.weight)
    assert model_spec("cifar_fast").feature_layer == "pool"


def test_weight_averaging_changes_the_returned_model_and_refuses_stacking(
    cifar_bits: tuple,
) -> None:
    train, _ = cifar_bits
    rec = get_recipe("cifar-fast").replace(epochs=1, warmup_epochs=0, batch_size=256)
    plain = fit("cifar_fast", train, recipe=rec.replace(ema_decay=0.0), seed=0)
    averaged = fit("cifar_fast", train, recipe=rec, seed=0)
    assert not torch.allclose(plain.model.fc.weight, averaged.model.fc.weight)
    # Training history is the same run: averaging only changes what is returned.
    assert plain.history[0].loss == averaged.history[0].loss
    with pytest.raises(ConfigError, match="does not keep weight averages"):
        train_many("cifar_fast", train, recipe=rec, seeds=[0, 1], stack=True)


@pytest.mark.gpu
def test_cifar_fast_trains_on_cuda_with_its_recipe(cifar_bits: tuple) -> None:
    train, test = cifar_bits
    rec = get_recipe("cifar-fast").replace(epochs=3, warmup_epochs=1, batch_size=128)
    res = fit("cifar_fast", train, recipe=rec, seed=0, device="cuda")
    assert res.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    logits = predict(
        res.model, test, transform=transform_for("cifar_fast"), device="cuda", test_time_flip=True
    )
    assert (logits.argmax(1) == test.labels).mean() > 0.25


def test_cifar_airbench_starts_near_the_identity_with_fixed_batch_norm_scales() -> None:
    net = create_model("cifar_airbench", num_classes=10, in_channels=3)
    convs = [m for m in net.blocks.modules() if isinstance(m, nn.Conv2d)]
    first, second = convs[0], convs[1]  # 24 -> 64 and 64 -> 64
    # The first 24 filters of the first conv copy their input channel (a dirac kernel).
    eye = torch.zeros(24, 24, 3, 3)
    eye[torch.arange(24), torch.arange(24), 1, 1] = 1
    assert torch.equal(first.weight[:24], eye)
    assert not torch.equal(first.weight[24:], torch.zeros_like(first.weight[24:]))
    x = torch.randn(2, 64, 8, 8)
    torch.testing.assert_close(second(x), x)  # the square conv is the identity at first
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    plain = create_model("cifar_fast", num_classes=10, in_channels=3)
    assert all(m.weight.requires_grad for m in plain.modules() if isinstance(m, nn.BatchNorm2d))
    assert model_spec("cifar_airbench").recipe == "cifar-airbench"


def test_cifar_airbench_learns_real_cifar_with_its_recipe(cifar_bits: tuple) -> None:
    train, test = cifar_bits
    rec = get_recipe("cifar-airbench").replace(epochs=3, warmup_epochs=1, batch_size=128)
    res = fit("cifar_airbench", train, recipe=rec, seed=0)
    frozen = [m.weight for m in res.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(w, torch.ones_like(w)) for w in frozen)  # never trained
    tf = transform_for("cifar_airbench")
    acc = predict(res.model, test, transform=tf, test_time_flip=True).argmax(1) == test.labels
    assert acc.mean() > 0.25
