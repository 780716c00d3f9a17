"""CIFAR ResNets (He et al. 2016, sec. 4.2): sizes, structure, option-A shortcut, init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from thresher.models import BasicBlock, PadShortcut, create_model, model_spec, transform_for
from thresher.models.resnet_cifar import CIFAR10_MEAN, CIFAR10_STD

STANDARD_LAYERS = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Linear,
    nn.Identity,
    nn.Sequential,
    BasicBlock,
    PadShortcut,
)


@pytest.mark.parametrize(
    ("name", "params", "paper_millions", "blocks"),
    [
        ("resnet20", 269_722, 0.27, 3),
        ("resnet32", 464_154, 0.46, 5),
        ("resnet56", 853_018, 0.85, 9),
    ],
)
def test_parameter_counts_match_the_paper(
    name: str, params: int, paper_millions: float, blocks: int
) -> None:
    model = create_model(name, num_classes=10, in_channels=3)
    count = sum(p.numel() for p in model.parameters())
    assert count == params
    assert round(count / 1e6, 2) == paper_millions
    for stage in ("layer1", "layer2", "layer3"):
        assert len(getattr(model, stage)) == blocks


def test_forward_gives_logits_and_64d_features() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=7, in_channels=3).eval()
    feats: list[torch.Tensor] = []
    handle = model.get_submodule(model_spec("resnet20").feature_layer).register_forward_hook(
        lambda _m, _i, out: feats.append(out)
    )
    with torch.no_grad():
        logits = model(torch.rand(4, 3, 32, 32))
    handle.remove()
    assert logits.shape == (4, 7)
    assert feats[0].shape == (4, 64)
    # Features feed the classifier directly.
    torch.testing.assert_close(model.fc(feats[0]), logits)


def test_grey_input_and_other_sizes() -> None:
    model = create_model("resnet32", num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
        assert model(torch.rand(2, 1, 17, 23)).shape == (2, 10)


def test_module_tree_uses_only_convertible_layers() -> None:
    model = create_model("resnet56", num_classes=10, in_channels=3)
    kinds = {type(m) for m in model.modules()}
    assert all(issubclass(k, STANDARD_LAYERS) for k in kinds), kinds
    shortcuts = [m for m in model.modules() if isinstance(m, PadShortcut)]
    # One option-A shortcut at the start of stages 2 and 3, no projection convs.
    assert [(s.pad, s.stride) for s in shortcuts] == [(8, 2), (16, 2)]
    assert all(isinstance(s.pad, int) and isinstance(s.stride, int) for s in shortcuts)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 27
    assert all(isinstance(b.relu, nn.ReLU) for b in blocks)


def test_pad_shortcut_subsamples_and_zero_pads_channels() -> None:
    x = torch.arange(2 * 4 * 5 * 5, dtype=torch.float32).view(2, 4, 5, 5)
    out = PadShortcut(pad=2, stride=2)(x)
    assert out.shape == (2, 8, 3, 3)
    torch.testing.assert_close(out[:, 2:6], x[:, :, ::2, ::2])
    assert out[:, :2].abs().sum() == 0
    assert out[:, 6:].abs().sum() == 0
    assert "pad=2, stride=2" in repr(PadShortcut(pad=2, stride=2))


def test_block_forward_is_the_documented_formula() -> None:
    torch.manual_seed(1)
    block = BasicBlock(in_planes=16, planes=32, stride=2).eval()
    x = torch.randn(3, 16, 8, 8)
    expected = torch.relu(
        block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
        + torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))
    )
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected)


def test_kaiming_init_and_seeded_determinism() -> None:
    torch.manual_seed(3)
    a = create_model("resnet56", num_classes=10, in_channels=3)
    torch.manual_seed(3)
    b = create_model("resnet56", num_classes=10, in_channels=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    conv = a.layer3[0].conv2  # 64 x 64 x 3 x 3: 36864 weights, a tight std estimate
    fan_in = conv.in_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2.0 / fan_in), rel=0.05)


def test_spec_uses_cifar_statistics() -> None:
    spec = model_spec("resnet20")
    assert spec.mean == CIFAR10_MEAN
    assert spec.std == CIFAR10_STD
    assert spec.recipe == "cifar-resnet"
    assert spec.input_size is None
    x = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    out = transform_for("resnet20")(x)
    torch.testing.assert_close(
        out[0, :, 0, 0], (1 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    )
