"""Batched data augmentation on the device: no per-sample Python, seeded generators only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from thresher.train.recipes import CROP_PADDING, TRANSLATE_PADDING


def random_crop(x: torch.Tensor, *, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels and crop each image back at its own random offset.

    Parameters
    ----------
    x : (B, C, H, W) tensor, any dtype (stored pixels, before normalisation).
    padding : pixels added on every side; offsets are uniform in ``[0, 2 * padding]``.
    generator : on ``x.device``; draws ``2 * B`` integers.

    Returns
    -------
    (B, C, H, W) tensor of the same dtype.
    """
    return crop_at(x, _draw_offsets(x.shape[0], padding, generator, x.device), padding=padding)


def crop_at(
    x: torch.Tensor, offsets: torch.Tensor, *, padding: int, reflect: bool = False
) -> torch.Tensor:
    """Crop ``(B, C, H, W)`` images, padded by ``padding`` (zeros, or with ``reflect`` their
    own mirrored border), at ``offsets`` ``(2, B)`` (row, column), in one gather."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    mode = "reflect" if reflect else "constant"
    padded = F.pad(x, (padding, padding, padding, padding), mode=mode)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice put their dims first: (B, H, W, C).
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def random_flip(x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2 (draws ``B`` numbers)."""
    return flip_where(x, _draw_flips(x.shape[0], generator, x.device))


def flip_where(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror the images of ``(B, C, H, W)`` where the ``(B,)`` mask ``flip`` is true."""
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def draw_augmentation(
    batch: int, augment: Sequence[str], *, generator: torch.Generator, device: torch.device
) -> list[torch.Tensor]:
    """The random numbers :func:`augment_batch` uses for ``batch`` images, in its order.

    Draws of several models' generators can be concatenated (:func:`join_draws`) and applied to
    all their images at once, giving each image exactly what its own generator would give it.
    """
    draws = []
    for name in augment:
        if name == "crop":
            draws.append(_draw_offsets(batch, CROP_PADDING, generator, device))
        elif name == "translate":
            draws.append(_draw_offsets(batch, TRANSLATE_PADDING, generator, device))
        elif name == "flip":
            draws.append(_draw_flips(batch, generator, device))
    return draws


def join_draws(per_model: Sequence[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Concatenate each model's draws along the batch axis (the last axis of every draw)."""
    return [torch.cat(parts, dim=-1) for parts in zip(*per_model, strict=True)]


def apply_augmentation(
    x: torch.Tensor, augment: Sequence[str], draws: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Apply a recipe's augmentations with pre-drawn random numbers."""
    for name, draw in zip(augment, draws, strict=True):
        if name == "crop":
            x = crop_at(x, draw, padding=CROP_PADDING)
        elif name == "translate":
            x = crop_at(x, draw, padding=TRANSLATE_PADDING, reflect=True)
        else:
            x = flip_where(x, draw)
    return x


def augment_batch(
    x: torch.Tensor, augment: Sequence[str], *, generator: torch.Generator
) -> torch.Tensor:
    """Apply a recipe's augmentations, in the recipe's order, to a (B, C, H, W) batch."""
    draws = draw_augmentation(x.shape[0], augment, generator=generator, device=x.device)
    return apply_augmentation(x, augment, draws)


def _draw_offsets(
    batch: int, padding: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    return torch.randint(
        0, 2 * padding + 1, (2, batch), generator=generator, device=device, dtype=torch.long
    )


def _draw_flips(batch: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(batch, generator=generator, device=device) < 0.5
