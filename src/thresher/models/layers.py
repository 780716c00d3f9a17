"""Which layers a model has, what they output, and which one is the penultimate (the one
layer finder: :func:`default_layer`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from thresher.errors import LayerError, did_you_mean

_OutputHook = Callable[[nn.Module, object, object], None]

_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)

#: How many names an error message lists before it cuts the list short.
_MAX_LISTED = 40


@dataclass(frozen=True)
class LayerInfo:
    """One tappable layer, as seen by a dry forward pass.

    Attributes:
        name: dotted module path, as in ``model.named_modules()`` ("features.3", "fc").
        type: the module's class name ("Conv2d").
        output_shape: output shape without the batch axis, e.g. ``(32, 26, 26)``.
        num_features: number of values per sample when the output is flattened.
        params: number of parameters, the module's children included.
        is_leaf: ``True`` for a module without children, ``False`` for a named container.
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    num_features: int
    params: int
    is_leaf: bool


def list_layers(model: nn.Module, *, input_shape: Sequence[int]) -> list[LayerInfo]:
    """All named modules that output a tensor, with their output shapes.

    Runs one forward pass on zeros of ``input_shape`` in eval mode without gradients; the hooks
    it uses are removed afterwards, even when the forward fails, and the model's train/eval
    flags are restored. Modules the forward never calls are left out; a module called more
    than once reports its first call.

    Parameters
    ----------
    model:
        any ``nn.Module`` taking one ``(B, C, H, W)`` tensor.
    input_shape:
        ``(C, H, W)`` or ``(B, C, H, W)`` of the model's input (after its transform).

    Returns
    -------
    list[LayerInfo]
        in ``named_modules()`` order; the root module itself is not listed.
    """
    modules = _named_submodules(model)
    shapes: dict[str, tuple[int, ...]] = {}

    def make_hook(name: str) -> _OutputHook:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if name not in shapes and isinstance(output, torch.Tensor) and output.ndim >= 1:
                shapes[name] = tuple(int(s) for s in output.shape[1:])

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in modules.items()]
    try:
        _dry_forward(model, input_shape)
    finally:
        for h in handles:
            h.remove()
    return [
        LayerInfo(
            name=name,
            type=type(module).__name__,
            output_shape=shapes[name],
            num_features=math.prod(shapes[name]),
            params=sum(p.numel() for p in module.parameters()),
            is_leaf=next(module.children(), None) is None,
        )
        for name, module in modules.items()
        if name in shapes
    ]


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; refuses unknown names with the list of valid ones."""
    modules = _named_submodules(model)
    if name in modules:
        return modules[name]
    names = list(modules)
    raise LayerError(
        f"model has no layer {name!r}{did_you_mean(name, names)} "
        f"(valid: {_listing(names)}); pick one of these names, see `thresher layers`"
    )


def default_layer(
    model: nn.Module,
    feature_layer: str = "",
    *,
    input_shape: Sequence[int] | None = None,
    example: torch.Tensor | None = None,
    classifier: nn.Module | None = None,
) -> str:
    """The penultimate layer: the module whose output the classifier reads (after pooling).

    The one layer finder of Thresher (embedding, model loading, the CLI and the app use it).
    ``feature_layer`` (a registered architecture's ``ModelSpec.feature_layer``) wins when given.
    Otherwise one forward pass on ``example`` (or zeros of ``input_shape``) finds the classifier
    (``classifier``, else a timm model's ``get_classifier()``, else the last ``nn.Linear`` to
    run) and returns the last module before it whose output *is* the classifier's input or a
    view of it (matched by storage, so a functional ``torch.flatten`` between ``avgpool`` and
    ``fc`` still finds ``avgpool``); Dropout and Identity, which hand their input on in eval
    mode, give way to the real layer.

    Raises
    ------
    LayerError
        unknown ``feature_layer``, no input shape, a failed forward pass, no classifier in the
        forward, or its input made by no module.
    """
    if feature_layer:
        resolve_layer(model, feature_layer)
        return feature_layer
    if example is None and input_shape is None:
        raise LayerError(
            "finding the penultimate layer needs the input shape; pass input_shape=(C, H, W) "
            "or name the layer explicitly"
        )
    if classifier is None:
        classifier = _timm_classifier(model)
    modules = _named_submodules(model)
    fired: list[tuple[str, torch.Tensor]] = []  # (name, output) in completion order
    head_input: list[tuple[int, torch.Tensor]] = []  # (len(fired) at call, input)

    def make_out_hook(name: str) -> _OutputHook:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if isinstance(output, torch.Tensor):
                fired.append((name, output))

        return hook

    def head_pre_hook(_module: nn.Module, inputs: tuple[object, ...]) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor):
            head_input.append((len(fired), inputs[0]))

    heads = [classifier] if classifier is not None else [
        m for m in modules.values() if isinstance(m, nn.Linear)
    ]  # fmt: skip
    handles = [m.register_forward_hook(make_out_hook(n)) for n, m in modules.items()]
    handles += [m.register_forward_pre_hook(head_pre_hook) for m in heads]
    try:
        _dry_forward(model, input_shape, example=example)
    finally:
        for h in handles:
            h.remove()
    if not head_input:
        raise LayerError(
            f"{type(model).__name__} runs no classifier layer (nn.Linear), so it has no obvious "
            f"penultimate layer; name one (valid: {_listing(list(modules))})"
        )
    before, x = head_input[-1]
    matches = [name for name, output in reversed(fired[:before]) if _same_values(output, x)]
    # In eval mode Dropout and Identity hand their input on unchanged: name the real layer.
    real = [n for n in matches if not isinstance(modules[n], _PASS_THROUGH)]
    if real or matches:
        return (real or matches)[0]
    raise LayerError(
        f"the classifier's input in {type(model).__name__} is computed outside any module, so "
        f"no layer holds it; name the layer explicitly (valid: {_listing(list(modules))})"
    )


def _timm_classifier(model: nn.Module) -> nn.Module | None:
    # timm models name their head: its input is the pre-logits feature vector.
    get_classifier = getattr(model, "get_classifier", None)
    if not callable(get_classifier):
        return None
    try:
        head = get_classifier()
    except Exception:  # not timm's method after all
        return None
    return head if isinstance(head, nn.Module) and not isinstance(head, nn.Identity) else None


def model_input_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def _same_values(output: torch.Tensor, x: torch.Tensor) -> bool:
    """``x`` is ``output`` or a reshaped view of it (same storage, offset and size)."""
    if output is x:
        return True
    return bool(
        output.numel() == x.numel()
        and output.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        and output.storage_offset() == x.storage_offset()
    )


def _named_submodules(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if name}


def _listing(names: list[str]) -> str:
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:_MAX_LISTED]) + f", ... ({len(names)} in all)"


def _dry_forward(
    model: nn.Module, input_shape: Sequence[int] | None, *, example: torch.Tensor | None = None
) -> None:
    """One forward pass in eval mode on ``example`` or on zeros of ``input_shape``."""
    if example is None:
        assert input_shape is not None
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 3:
            shape = (1, *shape)
        if len(shape) != 4 or min(shape) < 1:
            raise LayerError(
                f"input_shape must be (C, H, W) or (B, C, H, W) with positive sizes, got {shape}"
            )
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        x = torch.zeros(shape, dtype=dtype, device=model_input_device(model))
    else:
        x = example.to(model_input_device(model))
        shape = tuple(x.shape)
    with eval_mode(model), torch.inference_mode():
        try:
            model(x)
        except LayerError:
            raise
        except (RuntimeError, ValueError, TypeError) as err:
            raise LayerError(
                f"a trial forward pass on an input of shape {shape} failed ({err}); "
                "pass the input shape the model expects (channels, height, width) or name the "
                "feature layer"
            ) from err


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside the block; every module's own train/eval flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training
