"""LayerTap: captured copies, reductions, early stop, hooks always removed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thresher.embed import LayerTap
from thresher.errors import ConfigError, LayerError
from thresher.models import create_model


def _no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.fixture
def lenet() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mnist_lenet", num_classes=10).eval()


@pytest.mark.parametrize("reduce", ["none", "flatten"])
def test_capture_is_a_copy_not_changed_by_a_later_inplace_relu(reduce: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(inplace=True))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        expected = model[0](x)
    assert (expected < 0).any()  # the in-place ReLU would zero these
    with torch.inference_mode(), LayerTap(model, "0", pooling=reduce) as tap:
        model(x)
        captured = tap.outputs["0"]
    assert (captured < 0).any()
    torch.testing.assert_close(captured.reshape(expected.shape), expected)


def test_hooks_removed_when_the_body_raises(lenet: nn.Module) -> None:
    def body() -> None:
        with LayerTap(lenet, ["conv1", "flatten"]) as tap:
            lenet(torch.zeros(1, 1, 28, 28))
            assert tap.outputs["flatten"].shape == (1, 1600)
            assert lenet.conv1._forward_hooks  # active inside the block
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        body()
    assert _no_hooks_left(lenet)


def test_hooks_removed_when_a_hook_refuses_the_output() -> None:
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pair(x)[0]

    net = Net()
    with pytest.raises(LayerError, match="outputs tuple"), LayerTap(net, "pair") as tap:
        tap.run(torch.zeros(1, 1, 2, 2))
    assert _no_hooks_left(net)


def test_avgpool_and_flatten_shapes(lenet: nn.Module) -> None:
    x = torch.rand(3, 1, 28, 28)
    with torch.inference_mode():
        with LayerTap(lenet, ["conv2", "flatten"], pooling="flatten") as tap:
            lenet(x)
            flat = dict(tap.outputs)
        with LayerTap(lenet, ["conv2", "flatten"], pooling="avgpool") as tap:
            lenet(x)
            pooled = dict(tap.outputs)
    assert flat["conv2"].shape == (3, 64 * 11 * 11)
    assert pooled["conv2"].shape == (3, 64)
    torch.testing.assert_close(pooled["conv2"], flat["conv2"].reshape(3, 64, -1).mean(-1))
    # a 2-D output is left as it is by either reduction
    torch.testing.assert_close(pooled["flatten"], flat["flatten"])
    assert flat["flatten"].shape == (3, 1600)


def test_stop_early_skips_the_rest_and_matches_full_forward(lenet: nn.Module) -> None:
    x = torch.rand(2, 1, 28, 28)
    fc_calls: list[int] = []
    handle = lenet.fc.register_forward_pre_hook(lambda _m, _i: fc_calls.append(1))
    try:
        with torch.inference_mode(), LayerTap(lenet, "conv1", stop_early=True) as tap:
            assert tap.run(x) is None
            early = tap.outputs["conv1"]
        assert fc_calls == []
        with torch.inference_mode(), LayerTap(lenet, "conv1") as tap:
            logits = tap.run(x)
            full = tap.outputs["conv1"]
        assert isinstance(logits, torch.Tensor)
        assert logits.shape == (2, 10)
        assert fc_calls == [1]
    finally:
        handle.remove()
    torch.testing.assert_close(early, full)
    assert _no_hooks_left(lenet)


def test_outputs_follow_each_forward(lenet: nn.Module) -> None:
    a, b = torch.rand(1, 1, 28, 28), torch.rand(1, 1, 28, 28)
    with torch.inference_mode(), LayerTap(lenet, "flatten") as tap:
        lenet(a)
        first = tap.outputs["flatten"]
        lenet(b)
        second = tap.outputs["flatten"]
    assert not torch.equal(first, second)
    torch.testing.assert_close(second, lenet[:8](b))


def test_bad_arguments_are_refused(lenet: nn.Module) -> None:
    with pytest.raises(ConfigError, match="pooling"):
        LayerTap(lenet, "conv1", pooling="max")  # type: ignore[arg-type]
    with pytest.raises(LayerError, match="valid"):
        LayerTap(lenet, ["conv1", "conv9"])
    with pytest.raises(LayerError, match="no layer"):
        LayerTap(lenet, [])
    tap = LayerTap(lenet, "conv1")
    with pytest.raises(LayerError, match="active"):
        tap.run(torch.zeros(1, 1, 28, 28))
