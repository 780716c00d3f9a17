"""The cosine classifier head LDAM is defined on (``Recipe.head``): its logits, where it goes,
the loss on it, and the errors of a head a model or loss cannot take. Training with it and
reloading it from a checkpoint: tests/test_train_losses.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thresher.errors import ConfigError, ModelError
from thresher.models import create_model
from thresher.models.heads import CosineLinear, with_head
from thresher.train import Recipe, get_recipe
from thresher.train.losses import make_criterion


def test_cosine_logits_against_a_hand_computation() -> None:
    head = CosineLinear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, -3.0]]))
    x = torch.tensor([[3.0, 4.0], [0.0, -5.0]])
    expected = torch.tensor(
        [[0.6, 0.8, -(0.6 + 0.8) / np.sqrt(2)], [0.0, -1.0, 1 / np.sqrt(2)]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(head(x), expected)
    # scaling the features leaves the cosines as they were; the head's scale multiplies them
    torch.testing.assert_close(head(7 * x), expected)
    scaled = CosineLinear(2, 3, scale=30.0)
    scaled.load_state_dict(head.state_dict() | {"scale": torch.tensor(30.0)})
    torch.testing.assert_close(scaled(x), 30 * expected)
    with pytest.raises(ConfigError, match="scale must be > 0"):
        CosineLinear(2, 3, scale=0.0)


def test_ldam_on_the_cosine_head_is_cao_et_al_s_formula() -> None:
    # loss = CE(s * (cos - m_y)), with the scale s inside the head and the margin in cosine units
    counts = np.array([100, 1])
    rec = Recipe(loss="ldam", head="cosine", ldam_scale=30.0, ldam_max_margin=0.5)
    criterion = make_criterion(rec, class_counts=counts)
    cos = torch.tensor([[0.2, -0.1], [0.4, 0.3]])
    targets = torch.tensor([0, 1])
    margins = torch.tensor([0.5 / 100**0.25, 0.5])
    adjusted = cos.clone()
    adjusted[torch.arange(2), targets] -= margins[targets]
    expected = F.cross_entropy(30 * adjusted, targets)
    torch.testing.assert_close(criterion(30 * cos, targets, epoch=1), expected)


def test_with_head_replaces_the_final_classifier_and_unscales_cifar_fast() -> None:
    net = create_model("cifar_fast", num_classes=10, in_channels=3)
    assert net.logit_scale == pytest.approx(1 / 9)
    out = with_head(net, "cosine", num_classes=10)
    assert out is net
    assert isinstance(net.fc, CosineLinear)
    assert net.logit_scale == 1.0
    logits = net.eval()(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 10)
    assert logits.abs().max() <= 1.0 + 1e-6
    # inside a Sequential, and "linear" is the model untouched
    seq = nn.Sequential(nn.Flatten(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    with_head(seq, "cosine", num_classes=3)
    assert isinstance(seq[3], CosineLinear)
    assert isinstance(seq[1], nn.Linear)
    plain = create_model("cifar_fast", num_classes=10, in_channels=3)
    assert isinstance(with_head(plain, "linear", num_classes=10).fc, nn.Linear)


def test_bad_heads_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match="unknown classifier head 'arcface'; use one of"):
        Recipe(head="arcface")
    with pytest.raises(ConfigError, match="the cosine head belongs to LDAM"):
        Recipe(head="cosine")  # with cross-entropy: no margins, so no reason for cosines
    conv_only = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ModelError, match="has none; train it with head='linear'"):
        with_head(conv_only, "cosine", num_classes=2)


def test_recipe_keys_stay_as_before_unless_the_head_is_used() -> None:
    # stored results are keyed by a hash of Recipe.to_dict(): the default head adds nothing
    assert "head" not in get_recipe("cifar-fast").to_dict()
    ldam = get_recipe("cifar-resnet-ldam-drw")
    assert ldam.head == "cosine"
    assert ldam.to_dict()["head"] == "cosine"
    assert Recipe.from_dict(ldam.to_dict()) == ldam
    assert Recipe.from_dict(get_recipe("quick").to_dict()).head == "linear"
