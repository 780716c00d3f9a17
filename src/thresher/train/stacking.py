"""Many models of one architecture as ONE module: the layers hold the models side by side.

Layout: a conv stage carries ``(B, M * C, H, W)`` (model-major channels: model ``m`` owns
channels ``m * C ... (m + 1) * C - 1``), a vector stage ``(B, M * F)``. Every stacked layer maps
model ``m``'s block only to model ``m``'s block, so the models never see each other:

- ``Conv2d`` -> grouped convolution with ``groups = M * groups``;
- ``BatchNorm1d/2d`` -> batch norm over ``M * C`` channels (statistics stay per model);
- ``Linear`` -> :class:`EnsembleLinear` (a batched matmul with weight ``(M, O, F)``);
- ``PadShortcut`` -> :class:`StackedPadShortcut` (pads each model's channels);
- parameter-free per-channel layers (activations, pooling, dropout, ``Flatten``) are unchanged;
  ``Flatten`` of ``(B, M * C, H, W)`` gives model-major blocks of ``C * H * W``, as needed;
- containers are rebuilt with their children converted.

A container's own ``forward`` is trusted to be per-channel (residual sums are); one that
concatenates or mixes channels would not be, so :func:`check_stacked` compares the stack with the
separate models on a probe batch before anything trains on it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from thresher.errors import ConfigError


class StackedLayer:
    """Mixin: a layer holding ``num_models`` models' versions of one layer."""

    num_models: int

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        """The state_dict entries model ``index`` has in its own, unstacked layer."""
        raise NotImplementedError


class StackedConv2d(nn.Conv2d, StackedLayer):
    """``M`` convolutions as one grouped convolution (weights concatenated on the out axis)."""

    @classmethod
    def from_layers(cls, convs: Sequence[nn.Conv2d]) -> StackedConv2d:
        c = convs[0]
        _same_config(
            convs,
            (
                "in_channels",
                "out_channels",
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "groups",
                "padding_mode",
            ),
        )
        if any((x.bias is None) != (c.bias is None) for x in convs):
            raise ConfigError(
                "cannot stack convolutions with and without bias; use one architecture"
            )
        m = len(convs)
        layer = cls(
            m * c.in_channels,
            m * c.out_channels,
            c.kernel_size,  # type: ignore[arg-type]
            stride=c.stride,  # type: ignore[arg-type]
            padding=c.padding,  # type: ignore[arg-type]
            dilation=c.dilation,  # type: ignore[arg-type]
            groups=m * c.groups,
            bias=c.bias is not None,
            padding_mode=c.padding_mode,
            device=c.weight.device,
            dtype=c.weight.dtype,
        )
        layer.num_models = m
        with torch.no_grad():
            layer.weight.copy_(torch.cat([x.weight for x in convs]))
            if layer.bias is not None:
                layer.bias.copy_(torch.cat([x.bias for x in convs]))  # type: ignore[misc]
        return layer

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        out = {"weight": self.weight.chunk(self.num_models)[index]}
        if self.bias is not None:
            out["bias"] = self.bias.chunk(self.num_models)[index]
        return out


class _StackedBatchNormMixin(StackedLayer):
    """Batch norm over ``M * C`` channels: each model's channels keep their own statistics."""

    @classmethod
    def from_layers(cls, norms: Sequence[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
        b = norms[0]
        _same_config(norms, ("num_features", "eps", "momentum", "affine", "track_running_stats"))
        m = len(norms)
        dev, dtype = _device_dtype(b)
        layer: Any = cls(  # type: ignore[call-arg]
            m * b.num_features,
            eps=b.eps,
            momentum=b.momentum,
            affine=b.affine,
            track_running_stats=b.track_running_stats,
            device=dev,
            dtype=dtype,
        )
        layer.num_models = m
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                if getattr(b, name) is not None:
                    getattr(layer, name).copy_(torch.cat([getattr(x, name) for x in norms]))
            if b.num_batches_tracked is not None:
                # Stacked models always take the same number of steps: one counter for all.
                layer.num_batches_tracked.copy_(b.num_batches_tracked)
        return cast(nn.Module, layer)

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.chunk(self.num_models)[index]
        counter = getattr(self, "num_batches_tracked", None)
        if counter is not None:
            out["num_batches_tracked"] = counter
        return out


class StackedBatchNorm2d(_StackedBatchNormMixin, nn.BatchNorm2d):
    pass


class StackedBatchNorm1d(_StackedBatchNormMixin, nn.BatchNorm1d):
    pass


class EnsembleLinear(nn.Module, StackedLayer):
    """``M`` linear layers on ``(B, M * F)`` -> ``(B, M * O)``: weight ``(M, O, F)``, bias ``(M, O)``."""

    def __init__(
        self,
        num_models: int,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_models = num_models
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(
            torch.empty(num_models, out_features, in_features, device=device, dtype=dtype)
        )
        self.bias = (
            nn.Parameter(torch.empty(num_models, out_features, device=device, dtype=dtype))
            if bias
            else None
        )

    @classmethod
    def from_layers(cls, linears: Sequence[nn.Linear]) -> EnsembleLinear:
        f = linears[0]
        _same_config(linears, ("in_features", "out_features"))
        if any((x.bias is None) != (f.bias is None) for x in linears):
            raise ConfigError(
                "cannot stack linear layers with and without bias; use one architecture"
            )
        layer = cls(
            len(linears),
            f.in_features,
            f.out_features,
            bias=f.bias is not None,
            device=f.weight.device,
            dtype=f.weight.dtype,
        )
        with torch.no_grad():
            layer.weight.copy_(torch.stack([x.weight for x in linears]))
            if layer.bias is not None:
                layer.bias.copy_(torch.stack([x.bias for x in linears]))
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.num_models * self.in_features:
            raise ConfigError(
                f"stacked linear layer expects (B, {self.num_models * self.in_features}), got "
                f"{tuple(x.shape)}; only linear layers on flat vectors can be stacked"
            )
        b = x.shape[0]
        xm = x.reshape(b, self.num_models, self.in_features).transpose(0, 1)  # (M, B, F)
        w = self.weight.transpose(1, 2)  # (M, F, O)
        if self.bias is None:
            out = torch.bmm(xm, w)
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), xm, w)  # (M, B, O)
        return out.transpose(0, 1).reshape(b, self.num_models * self.out_features)

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        out = {"weight": self.weight[index]}
        if self.bias is not None:
            out["bias"] = self.bias[index]
        return out

    def extra_repr(self) -> str:
        return (
            f"num_models={self.num_models}, in_features={self.in_features}, "
            f"out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedPadShortcut(nn.Module, StackedLayer):
    """Option-A shortcut per model: subsample, then zero-pad each model's own channels."""

    def __init__(self, *, num_models: int, pad: int, stride: int) -> None:
        super().__init__()
        self.num_models = num_models
        self.pad = int(pad)
        self.stride = int(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        b, mc, h, w = x.shape
        x = x.reshape(b, self.num_models, mc // self.num_models, h, w)
        x = F.pad(x, (0, 0, 0, 0, self.pad, self.pad))
        return x.reshape(b, -1, h, w)

    def model_state(self, index: int) -> dict[str, torch.Tensor]:
        return {}

    def extra_repr(self) -> str:
        return f"num_models={self.num_models}, pad={self.pad}, stride={self.stride}"


# --- the converter registry --------------------------------------------------------------

Stacker = Callable[[Sequence[nn.Module]], nn.Module]

# Parameter-free layers that act on each channel (or element) on its own.
PER_CHANNEL: set[type[nn.Module]] = {
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
    nn.Sigmoid, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout,
}  # fmt: skip

STACKERS: dict[type[nn.Module], Stacker] = {
    nn.Conv2d: StackedConv2d.from_layers,  # type: ignore[dict-item]
    nn.BatchNorm2d: StackedBatchNorm2d.from_layers,  # type: ignore[dict-item]
    nn.BatchNorm1d: StackedBatchNorm1d.from_layers,  # type: ignore[dict-item]
    nn.Linear: EnsembleLinear.from_layers,  # type: ignore[dict-item]
}


def register_stacker(layer_type: type[nn.Module], stacker: Stacker) -> None:
    """Teach stacking a new layer type: ``stacker(layers) -> module`` for the ``(B, M*C, ...)``
    layout; the result needs a ``model_state(i)`` method if the layer has state."""
    STACKERS[layer_type] = stacker


def _stack_flatten(layers: Sequence[nn.Module]) -> nn.Module:
    f = layers[0]
    assert isinstance(f, nn.Flatten)
    if f.start_dim != 1 or f.end_dim != -1:
        raise ConfigError(
            f"only Flatten(start_dim=1, end_dim=-1) can be stacked, got start_dim={f.start_dim}, "
            f"end_dim={f.end_dim}; train these models one after another (stack=False)"
        )
    return nn.Flatten()


STACKERS[nn.Flatten] = _stack_flatten


def _register_pad_shortcut() -> None:
    try:
        from thresher.models.resnet_cifar import PadShortcut
    except ImportError:  # the CIFAR ResNets are optional for stacking
        return

    def stack(layers: Sequence[nn.Module]) -> nn.Module:
        _same_config(layers, ("pad", "stride"))
        p = layers[0]
        return StackedPadShortcut(num_models=len(layers), pad=p.pad, stride=p.stride)  # type: ignore[arg-type]

    STACKERS[PadShortcut] = stack


_register_pad_shortcut()


# --- the ensemble module -----------------------------------------------------------------------


class StackedModels(nn.Module):
    """``M`` models of one architecture evaluated and trained as one module.

    ``forward`` takes either one batch per model, ``(M, B, *sample)``, or one batch shared by
    all, ``(B, *sample)``, and returns ``(M, B, K)``. Build with :func:`stack_models`; get the
    separate models back with :func:`unstack`.
    """

    output_batch_dim = 1  # predict() concatenates batches along this axis

    def __init__(self, body: nn.Module, *, template: nn.Module, num_models: int, sample_ndim: int):
        super().__init__()
        self.body = body
        self.num_models = num_models
        self.sample_ndim = sample_ndim
        # Kept outside the module tree: its parameters must not be trained or saved.
        object.__setattr__(self, "_template", template)

    @property
    def template(self) -> nn.Module:
        return self.__dict__["_template"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.num_models
        if x.ndim == self.sample_ndim + 2:
            if x.shape[0] != m:
                raise ConfigError(
                    f"per-model input must start with {m} models, got shape {tuple(x.shape)}"
                )
            b, c = x.shape[1], x.shape[2]
            joined = x.transpose(0, 1).reshape(b, m * c, *x.shape[3:])
        elif x.ndim == self.sample_ndim + 1:
            b = x.shape[0]
            joined = x.repeat(1, m, *([1] * (x.ndim - 2)))
        else:
            raise ConfigError(
                f"stacked models take (M, B, ...) or (B, ...) with {self.sample_ndim} sample "
                f"dims, got shape {tuple(x.shape)}"
            )
        out = self.body(joined)
        return out.reshape(b, m, -1).transpose(0, 1)


def stack_models(models: Sequence[nn.Module], *, sample_ndim: int = 3) -> StackedModels:
    """One :class:`StackedModels` holding copies of ``models`` (which are left unchanged).

    Parameters
    ----------
    models : ``M >= 1`` modules of one architecture.
    sample_ndim : dims of one input sample (3 for ``(C, H, W)`` images).

    Raises
    ------
    ConfigError naming the first layer that cannot be stacked, or differing architectures.
    """
    if not models:
        raise ConfigError("stack_models needs at least one model")
    memo: dict[int, nn.Module] = {}
    body = _convert(list(models), path="", memo=memo)
    stacked = StackedModels(
        body, template=copy.deepcopy(models[0]), num_models=len(models), sample_ndim=sample_ndim
    )
    return stacked.train(models[0].training)


def unstack(stacked: StackedModels) -> list[nn.Module]:
    """The ``M`` separate models, as ordinary modules on the CPU, in the stack's train/eval mode."""
    m = stacked.num_models
    states: list[dict[str, torch.Tensor]] = [{} for _ in range(m)]
    for prefix, layer in stacked.body.named_modules(remove_duplicate=False):
        if isinstance(layer, StackedLayer):
            for i in range(m):
                for key, value in layer.model_state(i).items():
                    full = f"{prefix}.{key}" if prefix else key
                    states[i][full] = value.detach().cpu().clone()
    out = []
    for state in states:
        single = copy.deepcopy(stacked.template).cpu()
        single.load_state_dict(state, strict=True)
        out.append(single.train(stacked.training))
    return out


@torch.no_grad()
def check_stacked(
    stacked: StackedModels, models: Sequence[nn.Module], sample: torch.Tensor, *, tol: float = 1e-4
) -> None:
    """Raise ``ConfigError`` unless ``stacked`` gives each model's own logits on ``sample``
    (eval mode; ``sample`` is a small model-input batch on the models' device)."""
    modes = [m.training for m in models]
    mode = stacked.training
    try:
        got = stacked.eval()(sample)
        for i, model in enumerate(models):
            want = model.eval()(sample)
            scale = float(want.abs().max()) + 1.0
            if got[i].shape != want.shape or not torch.allclose(
                got[i], want, atol=tol * scale, rtol=tol
            ):
                raise ConfigError(
                    f"stacking changes the outputs of this architecture (model {i} differs); a "
                    "layer mixes channels across models; train them one after another (stack=False)"
                )
    finally:
        stacked.train(mode)
        for model, was in zip(models, modes, strict=True):
            model.train(was)


# --- conversion --------------------------------------------------------------------------------


def _convert(layers: list[nn.Module], *, path: str, memo: dict[int, nn.Module]) -> nn.Module:
    first = layers[0]
    if id(first) in memo:  # one module used at two places (e.g. a shared ReLU) stays shared
        return memo[id(first)]
    kind = type(first)
    name = path or "<model>"
    if any(type(x) is not kind for x in layers):
        raise ConfigError(
            f"cannot stack layer {name!r}: the models differ there; use one architecture"
        )
    if kind in STACKERS:
        out = STACKERS[kind](layers)
        _keep_frozen(first, out, name=name)
    elif kind in PER_CHANNEL:
        out = copy.deepcopy(first)
    elif next(first.children(), None) is not None:
        out = _convert_container(layers, path=path, memo=memo)
    else:
        raise ConfigError(
            f"cannot stack layer {name!r} ({kind.__name__}): no stacked version of it; "
            "train these models one after another (stack=False) or register_stacker() one"
        )
    memo[id(first)] = out
    return out


def _keep_frozen(first: nn.Module, stacked: nn.Module, *, name: str) -> None:
    """A parameter frozen in the models (``requires_grad=False``, e.g. a fixed whitening
    conv) stays frozen in the stacked layer, which a stacker builds afresh."""
    frozen = {n for n, p in first.named_parameters(recurse=False) if not p.requires_grad}
    params = dict(stacked.named_parameters(recurse=False))
    for param_name in frozen:
        if param_name not in params:
            raise ConfigError(
                f"cannot stack layer {name!r}: its frozen parameter {param_name!r} has no "
                "stacked counterpart; train these models one after another (stack=False)"
            )
        params[param_name].requires_grad_(False)


def _convert_container(
    layers: list[nn.Module], *, path: str, memo: dict[int, nn.Module]
) -> nn.Module:
    first = layers[0]
    own = [n for n, _ in first.named_parameters(recurse=False)]
    own += [n for n, _ in first.named_buffers(recurse=False)]
    if own:
        raise ConfigError(
            f"cannot stack {path or '<model>'!r} ({type(first).__name__}): it holds its own "
            f"tensor {own[0]!r} outside a layer; train these models one after another (stack=False)"
        )
    names = [n for n, _ in first.named_children()]
    if any([n for n, _ in x.named_children()] != names for x in layers):
        raise ConfigError(f"cannot stack {path or '<model>'!r}: the models differ there")
    # Copy the container itself but not its children (they are replaced below).
    skip = {id(child): child for child in first.children()}
    shell = copy.deepcopy(first, memo=skip)
    for child_name in names:
        children = [getattr(x, child_name) for x in layers]
        child_path = f"{path}.{child_name}" if path else child_name
        setattr(shell, child_name, _convert(children, path=child_path, memo=memo))
    return shell


def _same_config(layers: Sequence[nn.Module], attrs: Sequence[str]) -> None:
    first = layers[0]
    for attr in attrs:
        want = getattr(first, attr)
        if any(getattr(x, attr) != want for x in layers[1:]):
            raise ConfigError(
                f"cannot stack {type(first).__name__} layers with different {attr}; "
                "stack models of one architecture"
            )


def _device_dtype(module: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    t: torch.Tensor | None = next(iter(module.parameters()), None)
    if t is None:
        t = next(iter(module.buffers()), None)
    return (t.device, t.dtype) if t is not None else (None, None)
