"""Device choice and deterministic seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from thresher.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" -> CUDA when present, CPU otherwise; refuses a CUDA request without one."""
    if device is None or device == "auto":
        device = os.environ.get("THRESHER_DEVICE", "auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for but no CUDA GPU is available; use --device cpu"
        )
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a CPU generator for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
