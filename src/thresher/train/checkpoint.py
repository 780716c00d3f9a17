"""Model checkpoints as safetensors (no pickle), written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thresher.errors import ModelError
from thresher.models import create_model, load_weights
from thresher.models import save_checkpoint as models_save_checkpoint
from thresher.models.heads import with_head
from thresher.train.trainer import TrainResult

FORMAT = "thresher.checkpoint.v1"


def save_checkpoint(
    model: nn.Module | TrainResult,
    path: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the weights of ``model`` (and how to rebuild it) to ``path`` (``.safetensors``).

    Same argument order as :func:`thresher.models.save_checkpoint`, plus the metadata that lets
    :func:`load_checkpoint` rebuild the model.

    A :class:`TrainResult` brings its model name, class count, channels and recipe along; for a
    plain module give ``model_name``/``num_classes``/``in_channels`` so that
    :func:`load_checkpoint` can rebuild it without a ``model=`` template.
    ``metadata`` values must be JSON-serialisable.
    """
    info: dict[str, Any] = {}
    if isinstance(model, TrainResult):
        info.update(
            model_name=model.model_name,
            num_classes=model.num_classes,
            in_channels=model.in_channels,
            seed=model.seed,
            recipe=model.recipe.to_dict(),
        )
        model = model.model
    for key, value in (
        ("model_name", model_name),
        ("num_classes", num_classes),
        ("in_channels", in_channels),
    ):
        if value is not None:
            info[key] = value
    info.update(metadata or {})
    header = {"format": FORMAT, "info": json.dumps(info, sort_keys=True)}
    return models_save_checkpoint(model, path, metadata=header)


def checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata stored by :func:`save_checkpoint` (model name, classes, recipe, ...)."""
    from safetensors import safe_open

    p = _existing(path)
    try:
        with safe_open(str(p), framework="pt") as fh:
            header = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise ModelError(
            f"{p} is not a readable safetensors checkpoint ({err}); re-save it"
        ) from err
    if header.get("format") != FORMAT:
        return {}
    return json.loads(header.get("info", "{}"))


def load_checkpoint(path: str | os.PathLike[str], *, model: nn.Module | None = None) -> nn.Module:
    """Load weights from ``path`` into ``model`` (in place), or into a model rebuilt from the
    registry name stored by :func:`save_checkpoint`; returned in eval mode on the CPU.

    ``.pt``/``.pth`` files need ``model=`` and load with ``torch.load(weights_only=True)``.
    """
    p = _existing(path)
    info = checkpoint_info(p) if p.suffix.lower() == ".safetensors" else {}
    if model is None:
        name = info.get("model_name")
        if not name or "num_classes" not in info:
            raise ModelError(
                f"{p} does not say which architecture it holds; pass model= with a matching module"
            )
        model = create_model(
            name, num_classes=int(info["num_classes"]), in_channels=int(info.get("in_channels", 1))
        )
        # the classifier head is part of the training recipe (LDAM trains a cosine head)
        head = (info.get("recipe") or {}).get("head", "linear")
        model = with_head(model, head, num_classes=int(info["num_classes"]))
    load_weights(model, p)  # checks keys and shapes, refuses pickled code in .pt files
    return model.eval().to(torch.device("cpu"))


def _existing(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"checkpoint {p} does not exist; check the path or train a model first")
    return p
