"""ImageDataset: the validation every loader relies on, selection by id, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.data import ImageDataset
from thresher.errors import DataError


def make(n: int = 6, **kw: object) -> ImageDataset:
    args: dict[str, object] = {
        "images": np.arange(n * 4, dtype=np.uint8).reshape(n, 1, 2, 2),
        "labels": np.arange(n) % 3,
        "ids": [f"s{i}" for i in range(n)],
        "classes": ("a", "b", "c"),
        "name": "toy",
    }
    args.update(kw)
    return ImageDataset(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"images": np.zeros((3, 2, 2), np.uint8)}, r"\(N, C, H, W\)"),
        ({"images": np.zeros((6, 1, 2, 2), np.int32)}, "uint8"),
        ({"images": np.zeros((0, 1, 2, 2), np.uint8), "labels": None, "ids": []}, "empty"),
        ({"ids": ["a"] * 6}, "not unique"),
        ({"ids": ["a", "b"]}, "6 images but 2 ids"),
        ({"labels": np.array([0, 1])}, "6 images but 2 labels"),
        ({"labels": np.array([0, 1, 2, 3, 0, 1])}, "label 3 of sample s3 is out of range"),
        ({"labels": np.array([0, -1, 2, 0, 0, 1])}, "label -1"),
        ({"labels": np.zeros(6, np.float32)}, "integers"),
    ],
)
def test_bad_datasets_are_refused_with_the_reason(kw: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        make(**kw)


def test_nan_images_are_named_by_id() -> None:
    images = np.zeros((4, 1, 2, 2), np.float32)
    images[2, 0, 1, 1] = np.nan
    with pytest.raises(DataError, match="image s2 contains NaN"):
        make(4, images=images, labels=None, ids=[f"s{i}" for i in range(4)])


def test_float_images_outside_0_1_are_refused_with_the_fix() -> None:
    pixels = np.full((4, 1, 2, 2), 200.0, np.float32)  # 0-255 values stored as floats
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\].*divide by 255"):
        make(4, images=pixels, labels=None, ids=[f"s{i}" for i in range(4)])
    with pytest.raises(DataError, match=r"values in \[-1, 0.5\]; rescale them to \[0, 1\]"):
        make(
            4,
            images=np.full((4, 1, 2, 2), 0.5, np.float32)
            - np.eye(2, dtype=np.float32)[None, None] * 1.5,
            labels=None,
            ids=[f"s{i}" for i in range(4)],
        )
    ok = make(4, images=pixels / 255, labels=None, ids=[f"s{i}" for i in range(4)])
    assert float(ok.images.max()) == pytest.approx(200 / 255)


def test_subset_by_ids_keeps_order_and_content() -> None:
    ds = make()
    sub = ds.subset(["s4", "s1"])
    assert sub.ids.tolist() == ["s4", "s1"]
    assert sub.labels is not None
    assert sub.labels.tolist() == [1, 1]
    np.testing.assert_array_equal(sub.images[0], ds.images[4])
    with pytest.raises(DataError, match="not in the data set"):
        ds.subset(["s1", "zzz"])


def test_fingerprint_changes_with_any_pixel_or_label() -> None:
    ds = make()
    images = ds.images.copy()
    images[0, 0, 0, 0] += 1
    assert make(images=images).fingerprint() != ds.fingerprint()
    assert make(labels=np.array([1, 1, 2, 0, 1, 2])).fingerprint() != ds.fingerprint()
    assert make().fingerprint() == ds.fingerprint()


def test_unlabelled_dataset() -> None:
    ds = make(labels=None, classes=())
    assert not ds.is_labelled
    with pytest.raises(DataError, match="needs labels"):
        ds.class_counts()
