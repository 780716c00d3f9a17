"""load_dataset / registry / limit / dataset_info."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thresher.data import (
    DATASETS,
    dataset_info,
    from_arrays,
    load_dataset,
    stratified_indices,
)
from thresher.errors import ConfigError, DataError


def test_registry_lists_the_named_sets() -> None:
    assert DATASETS.names() == [
        "cifar10",
        "cifar100",
        "digits",
        "fashion-mnist",
        "fashion-mnist-detection",
        "mnist",
        "mnist-detection",
    ]
    with pytest.raises(DataError, match=r"unknown data set 'minst'; did you mean 'mnist'"):
        DATASETS.get("minst")


def test_unknown_name_and_missing_path() -> None:
    with pytest.raises(DataError, match=r"'fashion_mnist' is neither a data set name; did you mean "
                       r"'fashion-mnist'\?"):  # fmt: skip
        load_dataset("fashion_mnist")


def test_unknown_split_lists_valid(data_root: Path) -> None:
    with pytest.raises(DataError, match=r"mnist has no split 'val'; use one of train, test"):
        load_dataset("mnist", root=data_root, split="val")


def test_root_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data root .*nope does not exist"):
        load_dataset("mnist", root=tmp_path / "nope")


def test_cifar10_missing_names_both_locations(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"cifar-10-batches-py nor .*cifar10-jpeg.tar.gz; run `thresher data fetch"
    ):
        load_dataset("cifar10", root=tmp_path)


def test_limit_is_stratified_deterministic_and_exact(data_root: Path) -> None:
    full = load_dataset("mnist", root=data_root, split="test")
    sub = load_dataset("mnist", root=data_root, split="test", limit=1000, seed=5)
    assert len(sub) == 1000
    expected = full.class_counts() / len(full) * 1000
    assert np.all(np.abs(sub.class_counts() - expected) <= 1)
    again = load_dataset("mnist", root=data_root, split="test", limit=1000, seed=5)
    assert list(again.ids) == list(sub.ids)
    np.testing.assert_array_equal(full.subset(sub.ids).images, sub.images)
    assert sub.source["limit"] == {"limit": 1000, "seed": 5}


def test_stratified_indices_rounding_sums_exactly() -> None:
    labels = np.array([0] * 7 + [1] * 7 + [2] * 7)
    idx = stratified_indices(labels, 21, limit=10, seed=0)
    assert len(idx) == 10
    assert sorted(np.bincount(labels[idx])) == [3, 3, 4]
    assert np.all(np.diff(idx) > 0)
    with pytest.raises(ConfigError, match="limit must be a positive"):
        stratified_indices(labels, 21, limit=0, seed=0)


def test_dataset_info() -> None:
    ds = from_arrays(np.zeros((7, 1, 3, 2), np.uint8), [0, 0, 0, 0, 1, 1, 0],
                     classes=["a", "b", "c"], name="toy")  # fmt: skip
    info = dataset_info(ds)
    assert info["size"] == 7
    assert info["shape"] == [1, 3, 2]
    assert info["dtype"] == "uint8"
    assert info["counts"] == {"a": 5, "b": 2, "c": 0}
    assert info["imbalance_ratio"] == 2.5
    assert info["empty_classes"] == ["c"]
    unlabelled = dataset_info(from_arrays(np.zeros((2, 1, 2, 2), np.uint8)))
    assert unlabelled["labelled"] is False
    assert unlabelled["imbalance_ratio"] is None


def test_dataset_info_on_real_mnist(data_root: Path) -> None:
    info = dataset_info(load_dataset("mnist", root=data_root, split="train"))
    assert info["counts"]["1"] == 6742
    assert info["counts"]["5"] == 5421
    assert info["imbalance_ratio"] == pytest.approx(6742 / 5421)
