"""Turn stored pixels into model input on the device, batched (no per-sample Python)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from thresher.errors import DataError


@dataclass(frozen=True)
class InputTransform:
    """uint8 ``(B, C, H, W)`` (or float in [0, 1]) -> normalised float32, optionally resized.

    Attributes:
        mean, std: per-channel values in [0, 1] pixel units; one value broadcasts to all channels.
        size: ``(H, W)`` to resize to (bilinear), or ``None`` to keep the stored size.
    """

    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    size: tuple[int, int] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise DataError(f"model input must be (B, C, H, W), got shape {tuple(x.shape)}")
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        c = x.shape[1]
        mean = _per_channel(self.mean, c, x)
        std = _per_channel(self.std, c, x)
        x = (x - mean) / std
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=False
            )
        return x


def _per_channel(values: tuple[float, ...], channels: int, like: torch.Tensor) -> torch.Tensor:
    if channels == 1 and len(values) > 1:
        # Grey images on a colour-normalised architecture: one grey channel carries the mean
        # of the colour statistics (what a grey image repeated to RGB would see on average).
        values = (sum(values) / len(values),)
    if len(values) not in (1, channels):
        raise DataError(
            f"normalisation has {len(values)} values but the images have {channels} channels; "
            "give one value or one per channel"
        )
    t = torch.tensor(values, dtype=like.dtype, device=like.device)
    return t.view(1, -1, 1, 1)


def transform_for(model_name: str, *, size: tuple[int, int] | None = None) -> InputTransform:
    """The input transform of a registered architecture (its mean/std, and its input size)."""
    from thresher.models.registry import model_spec

    spec = model_spec(model_name)
    return InputTransform(mean=spec.mean, std=spec.std, size=size or spec.input_size)
