"""Top-K features per class (Algorithm 2), feature density (Algorithm 3) against a slow
reference, and per-class accuracy (Fig. 2)."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.diagnose import class_accuracy, feature_density, top_features
from thresher.errors import ConfigError, DataError


def test_top_features_and_overlap_on_hand_made_means() -> None:
    # class 0 mean (5, 4, 0, 1), class 1 mean (0, 4, 5, 1): top-2 = (0, 1) and (2, 1).
    x = np.array([[5, 4, 0, 1], [5, 4, 0, 1], [0, 4, 5, 1], [0, 4, 5, 1]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    res = top_features(x, y, top_k=2, classes=("a", "b"))
    assert res.indices.tolist() == [[0, 1], [2, 1]]
    assert res.overlap.tolist() == [[2, 1], [1, 2]]
    np.testing.assert_allclose(res.share[0], [5 / 9, 4 / 9])
    assert res.summary()["most_overlapping"] == ["a", "b", 1]


def test_ties_go_to_the_lower_index() -> None:
    x = np.ones((4, 3), dtype=np.float32)
    res = top_features(x, np.array([0, 0, 1, 1]), top_k=2)
    assert res.indices.tolist() == [[0, 1], [0, 1]]


def test_top_k_larger_than_the_features() -> None:
    x = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ConfigError, match="top_k = 5 exceeds the 3 embedding features"):
        top_features(x, np.array([0, 0, 1, 1]), top_k=5)


def _slow_density(
    x: np.ndarray, y: np.ndarray, ref: int, k: int, c: int
) -> tuple[list[int], np.ndarray]:
    """Algorithm 3 with plain loops and Python sorting."""
    d = x.shape[1]
    mean = [sum(float(x[i, f]) for i in range(len(y)) if y[i] == ref) for f in range(d)]
    ref_top = sorted(range(d), key=lambda f: (-mean[f], f))[:k]
    counts = np.zeros((c, k), dtype=np.int64)
    for i in range(len(y)):
        own = sorted(range(d), key=lambda f: (-float(x[i, f]), f))[:k]
        for j, f in enumerate(ref_top):
            if f in own:
                counts[y[i], j] += 1
    return ref_top, counts


def test_feature_density_matches_a_slow_reference() -> None:
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(150, 12))).astype(np.float32)
    y = rng.integers(0, 4, size=150)
    x[y == 2, 3] += 2.0  # class 2 leans on feature 3
    ref_top, counts = _slow_density(x, y, ref=2, k=4, c=4)
    res = feature_density(x, y, reference=2, top_k=4, chunk=37)  # chunks cut across classes
    assert res.features.tolist() == ref_top
    np.testing.assert_array_equal(res.counts, counts)
    n_ref = int((y == 2).sum())
    np.testing.assert_allclose(res.density, counts / n_ref)
    np.testing.assert_allclose(res.ratio_to_reference[0], counts[0] / counts[2])
    assert res.features[0] == 3


def test_feature_density_reference_by_name_and_unknown_name() -> None:
    x = np.abs(np.random.default_rng(0).normal(size=(20, 5))).astype(np.float32)
    y = np.arange(20) % 2
    res = feature_density(x, y, reference="cat", top_k=2, classes=("dog", "cat"))
    assert res.reference == 1
    with pytest.raises(ConfigError, match="unknown reference class 'cow'; use one of dog, cat"):
        feature_density(x, y, reference="cow", top_k=2, classes=("dog", "cat"))


def test_feature_density_missing_labels_and_nan() -> None:
    x = np.ones((6, 3), dtype=np.float32)
    with pytest.raises(DataError, match="unlabelled"):
        feature_density(x, None, reference=0, top_k=2)
    x[1, 1] = np.inf
    with pytest.raises(DataError, match="at row 1 contains NaN or inf"):
        feature_density(x, np.array([0, 1] * 3), reference=0, top_k=2)


def test_class_accuracy_and_imbalance() -> None:
    train = np.array([0] * 100 + [1] * 10 + [2] * 1)
    y = np.array([0, 0, 1, 1, 1, 1])
    p = np.array([0, 1, 1, 1, 1, 0])
    res = class_accuracy(y, p, train_labels=train, classes=("a", "b", "c"))
    assert res.accuracy[:2].tolist() == [0.5, 0.75]
    assert np.isnan(res.accuracy[2])  # no test items
    np.testing.assert_allclose(res.imbalance, [1.0, 0.1, 0.01])
    assert res.max_ratio == 100.0
    assert res.table()[1][0] == "a"  # largest class first
    with pytest.raises(DataError, match="needs the model's predictions"):
        class_accuracy(y, None, train_labels=train)
