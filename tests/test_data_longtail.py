"""Long-tailed subsets (Cao et al. 2019): exact counts, determinism, provenance."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.data import from_arrays, long_tailed_counts, make_long_tailed
from thresher.errors import ConfigError, DataError


def balanced(per_class: int, num_classes: int = 10) -> object:
    labels = np.repeat(np.arange(num_classes), per_class)
    images = np.zeros((len(labels), 1, 2, 2), dtype=np.uint8)
    return from_arrays(images, labels, name="bal", classes=[f"c{i}" for i in range(num_classes)])


def test_cifar10_lt_100_has_12406_images() -> None:
    # CIFAR-10 train has 5,000 images per class; CIFAR-10-LT at 100:1 (LDAM) has 12,406
    ds = balanced(5000)
    lt = make_long_tailed(ds, ratio=100, kind="exp", seed=0)
    assert len(lt) == 12406
    assert list(lt.class_counts()) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert lt.source["long_tail"] == {
        "ratio": 100.0,
        "kind": "exp",
        "seed": 0,
        "mu": 0.5,
        "n_max": 5000,
        "counts": [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50],
    }


def test_published_profiles() -> None:
    # CIFAR-10-LT 10:1 has 20,431 images; CIFAR-100-LT 100:1 has 10,847 (LDAM, Table 1 setup)
    assert long_tailed_counts(10, n_max=5000, ratio=10).sum() == 20431
    assert long_tailed_counts(100, n_max=500, ratio=100).sum() == 10847


def test_step_profile() -> None:
    lt = make_long_tailed(balanced(100), ratio=10, kind="step")
    assert list(lt.class_counts()) == [100] * 5 + [10] * 5
    three_tenths = long_tailed_counts(10, n_max=100, ratio=4, kind="step", mu=0.3)
    assert list(three_tenths) == [100] * 7 + [25] * 3


def test_ids_are_preserved_and_selection_is_seeded() -> None:
    ds = balanced(50)
    a = make_long_tailed(ds, ratio=10, seed=1)
    b = make_long_tailed(ds, ratio=10, seed=1)
    c = make_long_tailed(ds, ratio=10, seed=2)
    assert list(a.ids) == list(b.ids)
    assert list(a.ids) != list(c.ids)
    assert set(a.ids) <= set(ds.ids)
    # each kept id still carries its original label
    np.testing.assert_array_equal(ds.subset(a.ids).labels, a.labels)
    assert a.classes == ds.classes


def test_ratio_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"imbalance ratio must be >= 1"):
        make_long_tailed(balanced(10), ratio=0.5)


def test_unbalanced_source_uses_smallest_class() -> None:
    labels = np.array([0] * 30 + [1] * 20 + [2] * 40)
    ds = from_arrays(np.zeros((90, 1, 2, 2), np.uint8), labels)
    lt = make_long_tailed(ds, ratio=4)
    assert list(lt.class_counts()) == [20, 10, 5]
    with pytest.raises(DataError, match=r"class '0' has 30 samples but the profile needs 35"):
        make_long_tailed(ds, ratio=4, n_max=35)


def test_unlabelled_data_are_refused() -> None:
    ds = from_arrays(np.zeros((4, 1, 2, 2), np.uint8))
    with pytest.raises(DataError, match=r"make_long_tailed needs labels"):
        make_long_tailed(ds, ratio=10)
