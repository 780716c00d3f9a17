"""Decode encoded images (PNG, JPEG, ...) into one ``(N, C, H, W)`` uint8 array.

Grey images become one channel, colour images three (alpha dropped); if a set mixes both, the
grey ones are promoted to RGB (channels replicated, lossless). Every image must have the size
of the first. Decoding is Pillow, in-process. Measured on 2 cores for the 50,000 CIFAR-10
train JPEGs: serial about 5 s; a thread pool is slower (Pillow's per-image Python overhead holds
the GIL for 32x32 JPEGs); two worker processes take about 3 s, but spawn/forkserver re-run an
unguarded ``__main__`` script and fork is unsafe under torch's threads, so a library cannot use
them by default.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image

from thresher.errors import DataError
from thresher.progress import track

# What Pillow raises for a file it cannot decode (a decompression bomb warning is an error here:
# a header claiming a gigapixel image is a damaged file, not a reason to allocate).
DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
GREY_MODES = frozenset({"1", "L", "LA", "La", "F", "I", "I;16", "I;16B", "I;16L", "I;16N"})


def pil_to_array(im: Image.Image) -> np.ndarray:
    """``(H, W)`` uint8 for a grey image, ``(H, W, 3)`` uint8 for a colour one."""
    mode = im.mode
    if mode in GREY_MODES:
        if mode.startswith("I"):
            wide = np.asarray(im).astype(np.int64)
            # 16-bit grey keeps its high byte; 8-bit values stored as I stay as they are
            return (wide >> 8 if wide.max(initial=0) > 255 else wide).clip(0, 255).astype(np.uint8)
        return np.asarray(im if mode == "L" else im.convert("L"))
    return np.asarray(im if mode == "RGB" else im.convert("RGB"))


def decode_images(
    blobs: Sequence[bytes],
    ids: Sequence[str],
    *,
    name: str = "images",
) -> tuple[np.ndarray, int]:
    """Decode ``blobs`` (one encoded image each, named by ``ids``) into one array.

    Returns:
        ``(images, promoted)``: ``(N, C, H, W)`` uint8 with ``C`` 1 (all grey) or 3, and the
        number of grey images promoted to RGB because the set also holds colour images.

    Raises:
        DataError: an image cannot be decoded (named by id), or sizes differ.
    """
    if len(blobs) != len(ids):
        raise ValueError("one id per blob")
    if not blobs:
        raise DataError(f"{name}: no images to decode; check the path and the split")
    out: np.ndarray | None = None  # (N, H, W, 3), grey replicated into 3 channels
    grey = np.zeros(len(blobs), dtype=bool)
    pairs = track(zip(blobs, ids, strict=True), total=len(blobs), desc=f"decoding {name}")
    with warnings.catch_warnings():
        # a header claiming a gigapixel image is a damaged file here, not a reason to allocate
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        for i, (blob, sample_id) in enumerate(pairs):
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    im.load()
                    arr = pil_to_array(im)
            except DECODE_ERRORS as err:
                raise DataError(
                    f"{name}: cannot decode image {sample_id} ({type(err).__name__}: {err}); "
                    "delete or replace that file"
                ) from err
            if out is None:
                out = np.empty((len(blobs), arr.shape[0], arr.shape[1], 3), dtype=np.uint8)
            if arr.shape[:2] != out.shape[1:3]:
                raise DataError(
                    f"{name}: image {sample_id} is {arr.shape[1]}x{arr.shape[0]} but {ids[0]} is "
                    f"{out.shape[2]}x{out.shape[1]}; all images must have one size: resize them "
                    "first (e.g. with Pillow's Image.resize) into a copy of the folder"
                )
            if arr.ndim == 2:
                out[i] = arr[:, :, None]
                grey[i] = True
            else:
                out[i] = arr
    assert out is not None
    if grey.all():
        return np.ascontiguousarray(out[:, None, :, :, 0]), 0
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)), int(grey.sum())
