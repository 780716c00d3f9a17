"""Arrays, digits, torch datasets and unlabelled batch streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from thresher.data import (
    BatchStream,
    from_arrays,
    from_batches,
    from_torch_dataset,
    load_dataset,
    load_digits,
)
from thresher.errors import DataError


@pytest.mark.parametrize(
    ("shape", "channels_last"),
    [((5, 8, 6, 3), None), ((5, 3, 8, 6), None), ((5, 8, 6), None), ((5, 8, 6, 3), True)],
)
def test_from_arrays_layouts(shape: tuple[int, ...], channels_last: bool | None) -> None:
    x = np.zeros(shape, dtype=np.uint8)
    ds = from_arrays(x, np.arange(5) % 2, channels_last=channels_last, name="toy")
    assert ds.images.shape[0] == 5
    assert ds.images.shape[2:] == (8, 6)
    assert ds.ids[3] == "toy/0003"
    assert ds.classes == ("0", "1")


def test_from_arrays_nhwc_moves_channels() -> None:
    x = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    x[:, :, :, 2] = 200  # blue
    ds = from_arrays(x)
    assert ds.images.shape == (2, 3, 4, 5)
    assert (ds.images[:, 2] == 200).all()
    assert (ds.images[:, :2] == 0).all()


def test_ambiguous_layout_asks_for_channels_last() -> None:
    with pytest.raises(DataError, match=r"cannot tell the channel axis .*channels_last=True"):
        from_arrays(np.zeros((4, 3, 9, 3), np.uint8))


def test_float_out_of_range_is_rejected_unless_scaled() -> None:
    x = np.full((3, 1, 2, 2), 255.0)
    with pytest.raises(
        DataError, match=r"float pixels must lie in \[0, 1\], got \[255, 255\].*scale=255"
    ):
        from_arrays(x)
    ds = from_arrays(x, scale=255)
    assert ds.images.dtype == np.float32
    assert ds.images.max() == 1.0


def test_unlabelled_arrays_and_given_ids() -> None:
    ds = from_arrays(np.zeros((3, 1, 2, 2), np.float32), ids=["a", "b", "c"])
    assert ds.labels is None
    assert list(ds.ids) == ["a", "b", "c"]


def test_labels_out_of_range_with_class_names() -> None:
    with pytest.raises(DataError, match=r"label 2 of sample arrays/0001 is out of range \[0, 2\)"):
        from_arrays(np.zeros((2, 1, 2, 2), np.uint8), [0, 2], classes=["a", "b"])


def test_digits_real_and_split() -> None:
    full = load_digits()
    assert full.images.shape == (1797, 1, 8, 8)
    assert full.images.max() == 255
    assert full.ids[0] == "digits/0000"
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    assert len(train) + len(test) == 1797
    assert abs(len(test) - 0.2 * 1797) < 10
    assert not set(train.ids) & set(test.ids)
    # stratified: every class is 20% +- one sample in test
    share = test.class_counts() / full.class_counts()
    assert np.all(np.abs(share - 0.2) < 0.02)
    # same seed, same split; another seed, another split
    assert list(load_dataset("digits", split="test").ids) == list(test.ids)
    assert list(load_dataset("digits", split="test", seed=1).ids) != list(test.ids)


class PilDataset(torch.utils.data.Dataset):
    classes = ("dark", "light")

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.new("RGB", (4, 3), (i * 10, 0, 0)), i % 2


class TensorDataset(torch.utils.data.Dataset):
    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((1, self.sizes[i], 5), 0.5), torch.tensor(i % 3)


def test_torch_dataset_of_pil_images() -> None:
    ds = from_torch_dataset(PilDataset(), limit=4)
    assert ds.images.shape == (4, 3, 3, 4)
    assert ds.images.dtype == np.uint8
    assert ds.images[3, 0, 0, 0] == 30
    assert ds.classes == ("dark", "light")
    assert list(ds.ids) == ["PilDataset/0000", "PilDataset/0001", "PilDataset/0002",
                            "PilDataset/0003"]  # fmt: skip


def test_torch_dataset_of_float_tensors() -> None:
    ds = from_torch_dataset(TensorDataset([4, 4, 4]), name="t")
    assert ds.images.dtype == np.float32
    assert ds.images.shape == (3, 1, 4, 5)
    assert list(ds.labels) == [0, 1, 2]


def test_torch_dataset_mixed_sizes_named() -> None:
    with pytest.raises(DataError, match=r"t item 2 has shape \(1, 6, 5\) but item 0 has"):
        from_torch_dataset(TensorDataset([4, 4, 6]), name="t")


def make_batches(n_batches: int = 3, size: int = 4) -> list[tuple[np.ndarray, list[str]]]:
    return [
        (np.full((size, 1, 2, 2), b, np.uint8), [f"s{b}-{i}" for i in range(size)])
        for b in range(n_batches)
    ]


def test_batch_stream_is_reiterable_and_materialises() -> None:
    stream = from_batches(make_batches(), name="unlabelled")
    assert isinstance(stream, BatchStream)
    first = [ids.tolist() for _, ids in stream]
    second = [ids.tolist() for _, ids in stream]
    assert first == second
    assert len(first) == 3
    ds = stream.to_dataset()
    assert ds.labels is None
    assert len(ds) == 12
    assert ds.ids[4] == "s1-0"


def test_batch_stream_from_generator_factory() -> None:
    stream = from_batches(lambda: iter(make_batches(2)))
    assert len(stream.to_dataset()) == len(stream.to_dataset()) == 8


def test_one_shot_iterator_cannot_be_reused() -> None:
    stream = from_batches(iter(make_batches(2)))
    assert len(stream.to_dataset()) == 8
    with pytest.raises(DataError, match=r"already consumed .*pass a callable"):
        stream.to_dataset()


@pytest.mark.parametrize(
    ("batches", "message"),
    [
        ([(np.zeros((2, 2, 2), np.uint8), ["a", "b"])], r"batch 0: images must be 4-D"),
        ([(np.zeros((2, 1, 2, 2), np.uint8), ["a"])], r"batch 0: 2 images but 1 ids"),
        ([(np.zeros((2, 1, 2, 2), np.uint8), ["a", "a"])], r"id 'a' occurs twice"),
        (
            [(np.zeros((1, 1, 2, 2), np.uint8), ["a"]), (np.zeros((1, 1, 2, 2), np.uint8), ["a"])],
            r"batch 1: id 'a' occurs twice",
        ),
        (
            [(np.zeros((1, 1, 2, 2), np.uint8), ["a"]), (np.zeros((1, 1, 3, 3), np.uint8), ["b"])],
            r"batch 1: images are \(1, 3, 3\) uint8 but batch 0 was \(1, 2, 2\)",
        ),
    ],
)
def test_batch_stream_validation(batches: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        from_batches(batches).to_dataset()


def test_batch_stream_accepts_tensors() -> None:
    stream = from_batches([(torch.rand(3, 3, 4, 4), ["x", "y", "z"])])
    images, ids = next(iter(stream))
    assert images.dtype == np.float32
    assert list(ids) == ["x", "y", "z"]
