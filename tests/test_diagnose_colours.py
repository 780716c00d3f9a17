"""Colours that define classes (Algorithm 4): bins on known colours, streaming = one-shot,
true-class saliency on synthetic images, grayscale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data.types import ImageDataset
from thresher.diagnose import COLOUR_BINS, ColourAccumulator, class_colours, colour_bins
from thresher.errors import ConfigError, DataError

KNOWN = {
    "black": (10, 10, 10),
    "gray": (100, 100, 100),
    "silver": (170, 170, 170),
    "white": (250, 250, 250),
    "red": (220, 20, 20),
    "orange": (255, 140, 0),
    "brown": (139, 69, 19),
    "yellow": (240, 220, 30),
    "green": (30, 160, 40),
    "cyan": (0, 200, 200),
    "light blue": (135, 206, 235),
    "blue": (20, 40, 160),
    "purple": (120, 40, 200),
    "pink": (240, 50, 180),
}


def test_every_bin_on_a_known_colour() -> None:
    assert set(KNOWN) == set(COLOUR_BINS)
    assert len(COLOUR_BINS) == 14
    rgb = np.array(list(KNOWN.values()), dtype=np.uint8)
    assert [COLOUR_BINS[b] for b in colour_bins(rgb)] == list(KNOWN)


def test_streaming_equals_one_shot() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5000, 3)).astype(np.float64)
    labels = rng.integers(0, 3, size=5000)
    streamed = ColourAccumulator(3)
    for a in range(0, 5000, 333):
        streamed.update(rgb[a : a + 333], labels[a : a + 333])
    bins = colour_bins(rgb)
    for c in range(3):
        for b in range(14):
            sel = (labels == c) & (bins == b)
            assert streamed.counts_[c, b] == sel.sum()
            if sel.any():
                np.testing.assert_allclose(streamed.means_[c, b], rgb[sel].mean(0), rtol=1e-9)
    one = ColourAccumulator(3)
    one.update(rgb, labels)
    np.testing.assert_array_equal(one.counts_, streamed.counts_)
    np.testing.assert_allclose(one.means_, streamed.means_, rtol=1e-9)
    assert streamed.means_.shape == (3, 14, 3)  # state independent of the number of pixels


def _quadrant_model() -> nn.Module:
    """Class 0's logit reads only the top-left 4x4 quadrant, class 1's only the bottom-right; a
    large bias makes the model predict class 1 for everything."""
    lin = nn.Linear(3 * 8 * 8, 2)
    w = torch.zeros(2, 3, 8, 8)
    ramp = torch.arange(1, 17, dtype=torch.float32).view(4, 4)
    w[0, :, :4, :4] = ramp
    w[1, :, 4:, 4:] = ramp
    with torch.no_grad():
        lin.weight.copy_(w.view(2, -1))
        lin.bias.copy_(torch.tensor([0.0, 1e6]))
    return nn.Sequential(nn.Flatten(), lin)


def _quadrant_images(n: int) -> np.ndarray:
    img = np.zeros((n, 3, 8, 8), dtype=np.uint8)
    img[:, :] = np.array(KNOWN["green"], dtype=np.uint8)[None, :, None, None]
    img[:, :, :4, :4] = np.array(KNOWN["red"], dtype=np.uint8)[None, :, None, None]
    return img


def test_true_class_saliency_picks_the_true_class_pixels() -> None:
    model = _quadrant_model()
    images = _quadrant_images(6)
    res = class_colours(
        model,
        [(images, np.zeros(6, dtype=np.int64))],
        transform=lambda b: b.float() / 255.0,
        classes=("zero", "one"),
    )
    # Predicted class is 1 (bottom-right, green); the TRUE class 0 looks at the red quadrant.
    red = COLOUR_BINS.index("red")
    assert res.counts[0, red] == 6 * 7  # ceil(10% of 64) = 7 pixels per image, all red
    assert res.counts[0].sum() == 42
    assert res.images.tolist() == [6, 0]
    np.testing.assert_allclose(res.means[0, red], KNOWN["red"])
    assert np.isnan(res.share[1]).all()  # an unseen class: no shares
    assert res.summary()["top_colours"]["zero"][0] == "red"


def test_dataset_input_float_pixels_and_model_restored() -> None:
    model = _quadrant_model().train()
    images = _quadrant_images(4).astype(np.float32) / 255.0
    ds = ImageDataset(
        images=images,
        labels=np.array([0, 0, 1, 1]),
        ids=np.array(["a", "b", "c", "d"]),
        classes=("zero", "one"),
        name="quadrants",
    )
    res = class_colours(model, ds, transform=lambda b: b.float(), classes=ds.classes, fraction=0.25)
    assert res.counts[0, COLOUR_BINS.index("red")] == 2 * 16
    assert res.counts[1, COLOUR_BINS.index("green")] == 2 * 16
    assert model.training  # put back as it was


def test_grayscale_images_fall_in_achromatic_bins() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    images = np.zeros((4, 1, 4, 4), dtype=np.uint8)
    images[:2] = 255
    res = class_colours(
        model,
        [(images, np.array([0, 0, 1, 1]))],
        transform=lambda b: b.float() / 255.0,
        classes=("bright", "dark"),
    )
    assert res.counts[0, COLOUR_BINS.index("white")] == res.counts[0].sum() > 0
    assert res.counts[1, COLOUR_BINS.index("black")] == res.counts[1].sum() > 0


def test_bad_input() -> None:
    model = _quadrant_model()
    tf = lambda b: b.float() / 255.0  # noqa: E731
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 1\]"):
        class_colours(model, [], transform=tf, classes=("a", "b"), fraction=0.0)
    with pytest.raises(DataError, match=r"labels have shape \(2,\) but there are 3 items"):
        class_colours(
            model, [(_quadrant_images(3), np.array([0, 1]))], transform=tf, classes=("a", "b")
        )
    unlabelled = ImageDataset(
        images=_quadrant_images(2), labels=None, ids=np.array(["a", "b"]), classes=(), name="u"
    )
    with pytest.raises(DataError, match="colour analysis"):
        class_colours(model, unlabelled, transform=tf, classes=("a", "b"))
