"""Use any ``nn.Module``: wrap it with a spec, find its feature layer, load and save weights.

Checkpoints are read without running code: ``.safetensors`` files, or ``.pt``/``.pth`` files
through ``torch.load(weights_only=True)``, which refuses pickles that carry code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thresher.errors import LayerError, ModelError, did_you_mean
from thresher.models.layers import default_layer
from thresher.models.registry import ModelSpec
from thresher.store import atomic_path

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
# Keys under which training scripts commonly nest the state dict in a .pt checkpoint.
NESTED_STATE_KEYS = ("state_dict", "model_state_dict", "model")
LISTED_KEYS = 5


@dataclass(frozen=True)
class LoadedModel:
    """A ready model and what Thresher needs to know about it.

    Attributes:
        module: the model, mapping ``(B, C, H, W)`` float input to logits ``(B, classes)``.
        spec: its normalisation, input size and feature layer; ``spec.builder`` returns a fresh,
            re-initialised copy of ``module`` (for retraining with other seeds).
    """

    module: nn.Module
    spec: ModelSpec


def wrap_module(
    module: nn.Module,
    *,
    name: str = "custom",
    mean: tuple[float, ...] = (0.0,),
    std: tuple[float, ...] = (1.0,),
    input_size: tuple[int, int] | None = None,
    feature_layer: str | None = None,
    example: torch.Tensor | None = None,
    recipe: str = "paper-mnist",
) -> LoadedModel:
    """Describe a user ``nn.Module`` so Thresher can train it, embed with it and explain it.

    Parameters
    ----------
    module:
        the model; it is used as is (not copied).
    name:
        label for runs and reports (not registered).
    mean, std:
        per-channel normalisation in [0, 1] pixel units (one value broadcasts).
    input_size:
        ``(H, W)`` the model needs, or ``None`` to feed images at their stored size.
    feature_layer:
        module name of the penultimate features; ``None`` finds the input of the last
        ``nn.Linear`` with one forward pass (see :func:`thresher.models.layers.default_layer`).
    example:
        ``(B, C, H, W)`` input for that pass; by default guessed from the first conv layer and
        ``input_size`` (32 x 32 when unknown).
    recipe:
        default training recipe name.

    Raises
    ------
    ModelError
        ``module`` is not an ``nn.Module``, or the feature layer cannot be found.
    LayerError
        ``feature_layer`` names no module of ``module``.
    """
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"expected a torch.nn.Module, got {type(module).__name__}; pass the model object"
        )
    if feature_layer is None:
        if example is None and input_size is not None:
            example = _example_input(module, size=input_size)
        if example is None:
            example = _example_input(module, size=(32, 32))
        feature_layer = default_layer(module, example=example)
    else:
        check_layer(module, feature_layer)
    template = copy.deepcopy(module)

    def build(*, num_classes: int, in_channels: int) -> nn.Module:
        return fresh_copy(template, num_classes=num_classes, in_channels=in_channels)

    spec = ModelSpec(
        name=name,
        builder=build,
        input_size=input_size,
        mean=tuple(mean),
        std=tuple(std),
        recipe=recipe,
        feature_layer=feature_layer,
        description=f"user module {type(module).__name__}",
    )
    return LoadedModel(module=module, spec=spec)


def fresh_copy(module: nn.Module, *, num_classes: int, in_channels: int) -> nn.Module:
    """A deep copy of ``module`` with every ``reset_parameters()`` layer re-initialised.

    Raises ``ModelError`` when ``num_classes``/``in_channels`` disagree with the module's last
    ``nn.Linear`` / first conv layer (a user module cannot be re-shaped).
    """
    first_conv = _first(module, nn.Conv1d | nn.Conv2d | nn.Conv3d)
    last_linear = _last(module, nn.Linear)
    if first_conv is not None and first_conv.in_channels != in_channels:
        raise ModelError(
            f"the module takes {first_conv.in_channels} input channels, not {in_channels}; "
            "convert the images or build a module for that many channels"
        )
    if last_linear is not None and last_linear.out_features != num_classes:
        raise ModelError(
            f"the module outputs {last_linear.out_features} classes, not {num_classes}; "
            "replace its classifier layer to match the data"
        )
    fresh = copy.deepcopy(module)
    for sub in fresh.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
    return fresh


def check_layer(model: nn.Module, layer: str) -> nn.Module:
    """The submodule called ``layer``; ``LayerError`` listing close names when there is none."""
    modules = dict(model.named_modules())
    if layer not in modules or layer == "":
        names = [n for n in modules if n]
        raise LayerError(
            f"the model has no layer {layer!r}{did_you_mean(layer, names)}; "
            f"layers: {', '.join(names[:20])}{', ...' if len(names) > 20 else ''}"
        )
    return modules[layer]


# --- the penultimate layer -------------------------------------------------------------------


def feature_layer_of(
    model: nn.Module, spec: ModelSpec, *, example: torch.Tensor | None = None
) -> str:
    """``spec.feature_layer`` when set (checked to exist), else the layer the classifier reads
    (:func:`thresher.models.layers.default_layer`, one forward pass).

    Use this rather than ``spec.feature_layer`` alone: timm specs, and torchvision families
    whose head is functional, leave it empty because it depends on the built model.
    """
    if example is None and not spec.feature_layer:
        example = _example_input(model, size=spec.input_size or (32, 32))
    return default_layer(model, spec.feature_layer, example=example)


def _example_input(model: nn.Module, *, size: tuple[int, int]) -> torch.Tensor:
    conv = _first(model, nn.Conv2d)
    channels = conv.in_channels if conv is not None else 3
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, channels, *size, generator=generator).to(device)


def _first(model: nn.Module, kind: Any) -> Any:
    return next((m for m in model.modules() if isinstance(m, kind)), None)


def _last(model: nn.Module, kind: Any) -> Any:
    found = None
    for m in model.modules():
        if isinstance(m, kind):
            found = m
    return found


# --- checkpoints ------------------------------------------------------------------------------


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a checkpoint into ``model`` in place (and return it); the file is only read.

    ``.safetensors`` files load with safetensors; ``.pt``/``.pth`` files with
    ``torch.load(weights_only=True, map_location="cpu")``, which refuses any pickle that would
    run code. A ``.pt`` holding ``{"state_dict": ...}`` (or ``model_state_dict``/``model``) is
    unwrapped, and a DataParallel ``module.`` prefix is stripped when the model lacks it.

    Raises
    ------
    ModelError
        unknown suffix, unreadable or unsafe file, missing/unexpected keys, or a tensor whose
        shape differs from the model's (each message names the keys or the tensor and shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist; check the path")
    state = _read_state_dict(path)
    expected = model.state_dict()
    state = _strip_prefix(state, expected)
    _check_keys(state, expected, path)
    for key, want in expected.items():  # the model's order: the first layer that differs
        tensor = state[key]
        if tuple(tensor.shape) != tuple(want.shape):
            raise ModelError(
                f"tensor {key!r} in {path.name} has shape {tuple(tensor.shape)} but the model "
                f"expects {tuple(want.shape)}; the checkpoint is for a different architecture "
                "or number of classes"
            )
    model.load_state_dict(state, strict=True)
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelError(
                f"cannot read {path} as safetensors ({err}); the file is damaged or not safetensors"
            ) from err
    if suffix in TORCH_SUFFIXES:
        try:
            obj = torch.load(path, weights_only=True, map_location="cpu")
        except Exception as err:  # the unpickler raises several types for unsafe payloads
            raise ModelError(
                f"refusing to load {path}: it is not a plain tensor checkpoint that loads with "
                f"weights_only=True ({type(err).__name__}); re-save it with "
                "torch.save(model.state_dict(), path) or as .safetensors"
            ) from err
        return _state_dict_from(obj, path)
    raise ModelError(
        f"unknown checkpoint type {path.suffix!r} for {path.name}; use .safetensors, .pt or .pth"
    )


def _state_dict_from(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in NESTED_STATE_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and all(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                return dict(inner)
    raise ModelError(
        f"{path.name} holds no state dict (a name -> tensor mapping); save one with "
        "torch.save(model.state_dict(), path)"
    )


def _strip_prefix(
    state: dict[str, torch.Tensor], expected: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    prefix = "module."
    if (
        state
        and all(k.startswith(prefix) for k in state)
        and not any(k.startswith(prefix) for k in expected)
    ):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _check_keys(state: Mapping[str, Any], expected: Mapping[str, Any], path: Path) -> None:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({_listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
    raise ModelError(
        f"{path.name} does not match the model: keys {'; '.join(parts)}; "
        "load it into the architecture it was saved from"
    )


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (", ..." if len(keys) > LISTED_KEYS else "")


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], *, metadata: dict[str, str] | None = None
) -> Path:
    """Write ``model.state_dict()`` to ``path`` as safetensors, atomically; returns the path.

    ``metadata`` (string keys and values) goes into the safetensors header.

    Tensors that share memory (tied weights) are stored as separate copies, so the file loads
    back with :func:`load_weights` under every original name.
    """
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise ModelError(f"checkpoints are saved as .safetensors, got {path.name}; rename it")
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        storage = tensor.untyped_storage()
        where = (storage.data_ptr(), storage.nbytes())
        if where in seen or storage.nbytes() != tensor.numel() * tensor.element_size():
            tensor = tensor.clone()
        seen.add(where)
        tensors[key] = tensor
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", **(metadata or {})})
    return path


# --- identity ---------------------------------------------------------------------------------
