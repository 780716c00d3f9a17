"""LRP (zennit) against hand computations and a slow reference implementation of epsilon."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from thresher.errors import ConfigError, DataError
from thresher.explain import (
    COMPOSITES,
    LRPSettings,
    class_relevance,
    explain_classes,
    lrp_maps,
    negative_intensity,
    normalise_maps,
)


def identity(x: torch.Tensor) -> torch.Tensor:
    return x.float()


# --- eq. 1 and eq. 2 by hand -----------------------------------------------------------------
def test_normalise_divides_by_max_abs_and_keeps_zero_maps_zero() -> None:
    maps = torch.tensor([[[1.0, -4.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    out = normalise_maps(maps)
    assert torch.equal(out[0], torch.tensor([[0.25, -1.0], [0.5, 0.0]]))
    assert torch.equal(out[1], torch.zeros(2, 2))


def test_negative_intensity_sums_negative_entries() -> None:
    maps = np.array([[[1.0, -2.0], [-0.5, 3.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert negative_intensity(maps).tolist() == [-2.5, 0.0]


def test_class_scores_match_hand_computation_on_a_linear_net() -> None:
    # One linear layer, no bias: R_i = x_i * w_yi * z / (z + eps) ~ x_i * w_yi (start = logit).
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
    x = torch.tensor([[3.0, 1.0], [1.0, 2.0], [2.0, 2.0]]).view(3, 1, 1, 2)
    y = np.array([0, 0, 1])
    rel = class_relevance(
        net, x, y, num_classes=2, transform=identity, settings=LRPSettings(epsilon=1e-9)
    )
    # class 0: maps [3, -1] -> [1, -1/3]; [1, -2] -> [0.5, -1]; mean [0.75, -2/3]
    # class 1: map [4, 1] -> [1, 0.25]
    assert rel.counts.tolist() == [2, 1]
    np.testing.assert_allclose(
        rel.mean_maps().reshape(2, 2), [[0.75, -2 / 3], [1.0, 0.25]], rtol=1e-6
    )
    np.testing.assert_allclose(rel.negative_intensity(), [-2 / 3, 0.0], rtol=1e-6)


def test_start_from_logit_flips_sign_of_a_negative_logit_map_start_one_does_not() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[-1.0, -1.0]]))
    x = torch.tensor([[1.0, 3.0]]).view(1, 1, 1, 2)
    logit = lrp_maps(net, x, 0, transform=identity, settings=LRPSettings(epsilon=1e-9))
    one = lrp_maps(net, x, 0, transform=identity, settings=LRPSettings(epsilon=1e-9, start="one"))
    # R = x * w * R_out / z: start logit (R_out = z = -4) -> [-1, -3]; start one -> [0.25, 0.75]
    np.testing.assert_allclose(logit.ravel(), [-1 / 3, -1.0], rtol=1e-6)
    np.testing.assert_allclose(one.ravel(), [1 / 3, 1.0], rtol=1e-6)


# --- a slow reference implementation of LRP-epsilon ---------------------------------------------
class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.relu1 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(3 * 3 * 3, 6)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu1(self.conv(x))
        return self.fc2(self.relu2(self.fc1(self.flatten(h))))


def dense_of(layer: nn.Module, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The layer as an explicit matrix ``W`` and bias vector ``b`` over flattened tensors."""
    n_in = int(np.prod(in_shape))
    with torch.no_grad():
        bias = layer(torch.zeros(1, *in_shape)).reshape(-1).double().numpy()
        basis = torch.eye(n_in).reshape(n_in, *in_shape)
        cols = layer(basis).reshape(n_in, -1).double().numpy() - bias
    return cols.T, bias


def reference_epsilon(net: TinyNet, x: np.ndarray, target: int, eps: float) -> np.ndarray:
    """Textbook LRP-epsilon, one matrix per layer: R_i = a_i sum_j w_ji R_j / (z_j + eps sgn z_j)."""
    w1, b1 = dense_of(net.conv, (2, 5, 5))
    w2, b2 = dense_of(net.fc1, (27,))
    w3, b3 = dense_of(net.fc2, (6,))
    a0 = x.reshape(-1).astype(np.float64)
    layers = []
    a = a0
    for w, b, relu in ((w1, b1, True), (w2, b2, True), (w3, b3, False)):
        z = w @ a + b
        layers.append((w, a, z))
        a = np.maximum(z, 0) if relu else z
    relevance = np.zeros_like(a)
    relevance[target] = a[target]
    for w, a_in, z in reversed(layers):
        stab = z + eps * np.where(z >= 0, 1.0, -1.0)
        relevance = a_in * (w.T @ (relevance / stab))
    return relevance.reshape(x.shape)


@pytest.mark.parametrize("eps", [1e-4, 0.5])
def test_epsilon_matches_reference_implementation(eps: float) -> None:
    torch.manual_seed(3)
    net = TinyNet().eval()
    x = torch.randn(5, 2, 5, 5)
    targets = np.array([0, 1, 2, 3, 1])
    got = lrp_maps(
        net, x, targets, transform=identity, settings=LRPSettings(epsilon=eps), normalise=False
    )
    for i in range(5):
        want = reference_epsilon(net, x[i].numpy(), int(targets[i]), eps)
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-6)


def test_relevance_is_conserved_without_biases() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    for m in (net.conv, net.fc1, net.fc2):
        m.bias = None
    x = torch.rand(4, 2, 5, 5)
    maps = lrp_maps(
        net, x, 2, transform=identity, settings=LRPSettings(epsilon=1e-9), normalise=False
    )
    logits = net(x).detach()[:, 2].numpy()
    np.testing.assert_allclose(maps.reshape(4, -1).sum(axis=1), logits, rtol=1e-4, atol=1e-6)


def test_batching_does_not_change_the_maps() -> None:
    torch.manual_seed(1)
    net = TinyNet()
    x = torch.randn(7, 2, 5, 5)
    a = lrp_maps(net, x, 1, transform=identity, settings=LRPSettings(batch_size=2))
    b = lrp_maps(net, x, 1, transform=identity, settings=LRPSettings(batch_size=64))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # float32 GEMMs reorder sums


# --- hooks, canonizers, errors ---------------------------------------------------------------------
def hook_count(net: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in net.modules()
    )


def bn_net() -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    return net.eval()


def test_hooks_and_canonizer_changes_are_removed_even_after_an_error() -> None:
    torch.manual_seed(0)
    net = bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(3, 1, 6, 6)
    out_before = net(x).detach()
    with pytest.raises(DataError, match="outside"):
        lrp_maps(net, x, np.array([0, 1, 7]), transform=identity)
    assert hook_count(net) == 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    torch.testing.assert_close(net(x).detach(), out_before)
    lrp_maps(net, x, 0, transform=identity)
    assert hook_count(net) == 0


def test_model_mode_and_outputs_are_restored() -> None:
    net = bn_net().train()
    lrp_maps(net, torch.rand(2, 1, 6, 6), 0, transform=identity)
    assert net.training


@pytest.mark.parametrize(("name", "channels", "size"), [("fmnist_cnn", 1, 28), ("resnet20", 3, 8)])
def test_paper_net_and_cifar_resnet_give_finite_maps(name: str, channels: int, size: int) -> None:
    from thresher.models import create_model, transform_for

    torch.manual_seed(0)
    net = create_model(name, num_classes=10, in_channels=channels).eval()
    x = torch.randint(0, 256, (2, channels, size, size), dtype=torch.uint8)
    tf = transform_for(name)
    raw = lrp_maps(net, x, 3, transform=tf, normalise=False)
    assert raw.shape == (2, channels, size, size)
    assert np.isfinite(raw).all()
    assert np.abs(raw).max() > 0
    if name == "resnet20":  # bias-free convs, BN merged, explicit Sum: relevance ~ logit
        logits = net(tf(x)).detach()[:, 3].numpy()
        np.testing.assert_allclose(raw.reshape(2, -1).sum(1), logits, rtol=0.05)
    assert hook_count(net) == 0


def test_explain_classes_gives_one_map_per_class() -> None:
    torch.manual_seed(2)
    net = TinyNet()
    image = torch.rand(2, 5, 5)
    maps = explain_classes(net, image, num_classes=4, transform=identity)
    assert maps.shape == (4, 2, 5, 5)
    single = lrp_maps(net, image[None], 2, transform=identity)
    np.testing.assert_allclose(maps[2], single[0], rtol=1e-5, atol=1e-7)
    assert np.abs(maps).max() == pytest.approx(1.0)


def test_bad_settings_and_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="start must be"):
        LRPSettings(start="zero")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        LRPSettings(batch_size=0)
    with pytest.raises(ConfigError, match="epsilon must be > 0"):
        LRPSettings(epsilon=0.0)
    with pytest.raises(ConfigError, match="valid: epsilon"):
        lrp_maps(
            TinyNet(),
            torch.rand(1, 2, 5, 5),
            0,
            transform=identity,
            settings=LRPSettings(composite="nope"),
        )
    with pytest.raises(DataError, match="one target per image"):
        lrp_maps(TinyNet(), torch.rand(2, 2, 5, 5), np.array([0]), transform=identity)
    assert {"epsilon", "epsilon_plus_flat", "epsilon_gamma_box"} <= set(COMPOSITES.names())


@pytest.mark.parametrize(
    "composite", ["epsilon_plus", "epsilon_plus_flat", "epsilon_alpha2_beta1", "epsilon_gamma_box"]
)
def test_other_composites_run(composite: str) -> None:
    torch.manual_seed(0)
    maps = lrp_maps(
        bn_net(),
        torch.rand(2, 1, 6, 6),
        1,
        transform=identity,
        settings=LRPSettings(composite=composite),
    )
    assert maps.shape == (2, 1, 6, 6)
    assert np.isfinite(maps).all()


@pytest.mark.parametrize("make", ["bn", "tiny", "resnet"])
def test_fast_epsilon_equals_zennits_epsilon_rule(make: str) -> None:
    from thresher.models import create_model

    torch.manual_seed(4)
    if make == "bn":
        net, x = bn_net(), torch.rand(3, 1, 6, 6)
    elif make == "tiny":
        net, x = TinyNet().eval(), torch.randn(3, 2, 5, 5)
    else:
        net, x = (
            create_model("resnet20", num_classes=10, in_channels=3).eval(),
            torch.randn(2, 3, 8, 8),
        )
    fast = lrp_maps(net, x, 1, transform=identity, normalise=False)
    ref = lrp_maps(
        net,
        x,
        1,
        transform=identity,
        normalise=False,
        settings=LRPSettings(composite="epsilon_zennit"),
    )
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_weight_gradients_are_left_as_they_were() -> None:
    net = TinyNet()
    net.fc2.weight.requires_grad_(False)
    lrp_maps(net, torch.rand(2, 2, 5, 5), 0, transform=identity)
    assert not net.fc2.weight.requires_grad
    assert net.fc1.weight.requires_grad
    assert all(p.grad is None for p in net.parameters())
