"""Detection boxes drawn onto an image for the app (the grid, the image view, the cloud)."""

from __future__ import annotations

import math

import numpy as np

# matplotlib's tab10, the class colours of the app's cloud legend
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
MIN_SIDE = 128  # small canvases are enlarged (nearest) first, so that a 1-pixel box shows


def box_colour(label: int) -> tuple[int, int, int]:
    return PALETTE[int(label) % len(PALETTE)]


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]
) -> np.ndarray:
    """``image`` ``(C, H, W)`` uint8 with each box outlined in its class colour and named.

    Parameters
    ----------
    boxes : ``(m, 4)`` ``x1, y1, x2, y2`` in the image's pixels.
    labels : ``(m,)`` class indices into ``classes``.

    Returns
    -------
    ``(3, H * f, W * f)`` uint8, ``f = ceil(MIN_SIDE / max(H, W))`` (at least 1).
    """
    from PIL import Image, ImageDraw

    arr = np.asarray(image)
    rgb = np.repeat(arr, 3, axis=0) if arr.shape[0] == 1 else arr
    h, w = rgb.shape[1:]
    f = max(1, math.ceil(MIN_SIDE / max(h, w)))
    pil = Image.fromarray(np.ascontiguousarray(rgb.transpose(1, 2, 0))).convert("RGB")
    if f > 1:
        pil = pil.resize((w * f, h * f), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(pil)
    for (x1, y1, x2, y2), label in zip(np.asarray(boxes).tolist(), np.asarray(labels), strict=True):
        colour = box_colour(int(label))
        # the outline sits on the box's border pixels: x2, y2 are exclusive pixel edges
        draw.rectangle([x1 * f, y1 * f, x2 * f - 1, y2 * f - 1], outline=colour, width=1)
        name = classes[int(label)] if 0 <= int(label) < len(classes) else str(label)
        draw.text((x1 * f + 2, y1 * f + 1), name, fill=colour)
    return np.asarray(pil).transpose(2, 0, 1).copy()
