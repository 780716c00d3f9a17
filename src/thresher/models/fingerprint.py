"""A model's identity for caches: equal fingerprints mean equal architecture and weights."""

from __future__ import annotations

import hashlib

import torch
from torch import nn


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the module tree and the state dict (sorted keys, dtype, shape, raw bytes).

    The module tree (each module's path and class) is included so that two architectures
    sharing parameter names and shapes (``ReLU`` swapped for ``GELU``) differ. Parameters and
    buffers count alike: BatchNorm running statistics change the embeddings too.

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    for name, module in model.named_modules():
        cls = type(module)
        h.update(f"{name}\x00{cls.__module__}.{cls.__qualname__}\x00".encode())
    state = model.state_dict()
    for key in sorted(state):
        value = state[key]
        if not isinstance(value, torch.Tensor):  # extra state a module chose to save
            h.update(f"{key}\x00{value!r}\x00".encode())
            continue
        t = value.detach()
        h.update(f"{key}\x00{t.dtype}\x00{tuple(t.shape)}\x00".encode())
        raw = t.to("cpu").contiguous().reshape(-1).view(torch.uint8)
        h.update(raw.numpy().data)
    return h.hexdigest()
