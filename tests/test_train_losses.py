"""LDAM and deferred re-weighting (Cao et al. 2019) against hand computations, and the loss
choice through recipes and the trainer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thresher.data.types import ImageDataset
from thresher.errors import ConfigError
from thresher.models import create_model
from thresher.models.heads import CosineLinear
from thresher.train import Recipe, fit, get_recipe, load_checkpoint, save_checkpoint
from thresher.train.ensemble import train_many
from thresher.train.losses import LDAMLoss, drw_weights, ldam_margins, make_criterion


def test_margins_follow_the_inverse_fourth_root() -> None:
    # 1 / n^(1/4) for n = (16, 1) is (1/2, 1); scaled so the largest is 0.5.
    np.testing.assert_allclose(ldam_margins([16, 1]), [0.25, 0.5])
    np.testing.assert_allclose(ldam_margins([1, 81], max_margin=0.3), [0.3, 0.1])


def test_ldam_loss_against_a_hand_computation() -> None:
    loss = LDAMLoss([16, 1], scale=2.0)
    logits = torch.tensor([[0.5, 0.2]])
    # target 1: margin 0.5 -> adjusted (0.5, -0.3), scaled (1.0, -0.6)
    expected = 0.6 + math.log(math.e + math.exp(-0.6))
    assert loss(logits, torch.tensor([1])).item() == pytest.approx(expected, rel=1e-6)
    # target 0: margin 0.25 -> (0.25, 0.2) scaled (0.5, 0.4)
    expected0 = -0.5 + math.log(math.exp(0.5) + math.exp(0.4))
    assert loss(logits, torch.tensor([0])).item() == pytest.approx(expected0, rel=1e-6)


def test_drw_weights_against_a_hand_computation() -> None:
    raw = [0.1 / (1 - 0.9**100), 0.1 / (1 - 0.9**10)]
    expected = [2 * w / sum(raw) for w in raw]
    np.testing.assert_allclose(drw_weights([100, 10], beta=0.9), expected, rtol=1e-12)
    w = drw_weights([5000, 50])
    assert w.sum() == pytest.approx(2.0)
    assert w[1] > w[0]


def test_bad_counts_and_parameters() -> None:
    with pytest.raises(ConfigError, match="class 1 has 0 training images"):
        drw_weights([10, 0])
    with pytest.raises(ConfigError, match="one entry per class"):
        ldam_margins([10])
    with pytest.raises(ConfigError, match=r"beta must be in \[0, 1\)"):
        drw_weights([10, 5], beta=1.0)
    with pytest.raises(ConfigError, match="scale s must be > 0"):
        LDAMLoss([10, 5], scale=0)


def test_default_criterion_is_plain_cross_entropy() -> None:
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
    rec = Recipe(label_smoothing=0.1)
    crit = make_criterion(rec, class_counts=np.array([5, 2, 1]))
    assert torch.equal(crit(logits, y, epoch=1), F.cross_entropy(logits, y, label_smoothing=0.1))


def test_drw_switches_on_at_its_epoch() -> None:
    logits = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    counts = np.array([6, 2])
    crit = make_criterion(Recipe(epochs=4, drw_epoch=3), class_counts=counts)
    w = torch.tensor(drw_weights(counts), dtype=torch.float32)
    assert torch.allclose(crit(logits, y, epoch=2), F.cross_entropy(logits, y))
    assert torch.allclose(crit(logits, y, epoch=3), F.cross_entropy(logits, y, weight=w))
    ldam = make_criterion(
        Recipe(epochs=4, loss="ldam", drw_epoch=3, ldam_scale=2.0), class_counts=counts
    )
    plain = LDAMLoss(counts, scale=2.0)
    assert torch.allclose(ldam(logits, y, epoch=1), plain(logits, y))
    assert torch.allclose(ldam(logits, y, epoch=4), plain(logits, y, weight=w))


def test_recipe_fields_validation_and_registered_recipe() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'focal'; use one of ce, ldam"):
        Recipe(loss="focal")
    with pytest.raises(ConfigError, match="drw_epoch must be an integer >= 1"):
        Recipe(drw_epoch=0)
    rec = get_recipe("cifar-resnet-ldam-drw")
    assert (rec.loss, rec.drw_epoch, rec.ldam_max_margin, rec.ldam_scale) == ("ldam", 160, 0.5, 30)
    assert rec.drw_beta == 0.9999
    assert Recipe.from_dict(rec.to_dict()) == rec
    old = {k: v for k, v in get_recipe("quick").to_dict().items() if k not in ("loss", "drw_epoch")}
    assert Recipe.from_dict(old).loss == "ce"  # manifests from before the loss choice load


def _tiny_long_tailed() -> ImageDataset:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 48 + [1] * 8)
    images = rng.integers(0, 100, size=(56, 1, 4, 4), dtype=np.uint8)
    images[labels == 1, 0, :2] += 120
    return ImageDataset(
        images=images,
        labels=labels,
        ids=np.array([f"i{i}" for i in range(56)]),
        classes=("head", "tail"),
        name="tiny-lt",
    )


def _builder(*, num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16, num_classes))


def test_fit_trains_with_ldam_drw() -> None:
    ds = _tiny_long_tailed()
    base = Recipe(epochs=2, batch_size=28, lr=1e-2)
    ce = fit(_builder, ds, recipe=base, transform=lambda b: b.float() / 255.0)
    ldam = fit(
        _builder,
        ds,
        recipe=base.replace(loss="ldam", drw_epoch=2),
        transform=lambda b: b.float() / 255.0,
    )
    assert all(math.isfinite(e.loss) for e in ldam.history)
    assert ldam.recipe.loss == "ldam"
    assert not torch.equal(ce.model[1].weight, ldam.model[1].weight)


def test_ldam_with_the_cosine_head_trains_and_reloads_with_it(tmp_path) -> None:
    ds = _tiny_long_tailed()
    rec = Recipe(epochs=3, batch_size=28, lr=1e-2, loss="ldam", drw_epoch=3, head="cosine")
    res = fit(_builder, ds, recipe=rec, transform=lambda b: b.float() / 255.0)
    assert isinstance(res.model[1], CosineLinear)
    assert res.history[-1].loss < res.history[0].loss
    # a stored checkpoint is rebuilt with the head it was trained with
    net = create_model("mnist_lenet", num_classes=2, in_channels=1)
    trained = fit(
        "mnist_lenet",
        _padded(ds),
        recipe=get_recipe("quick").replace(epochs=1, loss="ldam", head="cosine"),
    )
    assert type(trained.model.get_submodule(_last_linear_name(net))) is CosineLinear
    path = save_checkpoint(trained, tmp_path / "m.safetensors")
    back = load_checkpoint(path)
    head = back.get_submodule(_last_linear_name(net))
    assert type(head) is CosineLinear
    assert float(head.scale) == 30.0
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(back(x), trained.model(x))


def test_many_models_with_the_cosine_head_train_one_by_one() -> None:
    ds = _tiny_long_tailed()
    rec = Recipe(epochs=1, batch_size=28, lr=1e-2, loss="ldam", head="cosine")
    tf = lambda b: b.float() / 255  # noqa: E731
    results = train_many(_builder, ds, recipe=rec, seeds=[0, 1], transform=tf)
    assert all(isinstance(r.model[1], CosineLinear) for r in results)


def _padded(ds: ImageDataset) -> ImageDataset:
    """The tiny set at MNIST's 28x28 (for the registered LeNet)."""
    images = np.zeros((len(ds.labels), 1, 28, 28), dtype=np.uint8)
    images[:, :, :4, :4] = ds.images
    return ImageDataset(
        images=images, labels=ds.labels, ids=ds.ids, classes=ds.classes, name="tiny-28"
    )


def _last_linear_name(net: nn.Module) -> str:
    return [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
