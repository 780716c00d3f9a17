"""Outlier scores find planted outliers; the selection takes exactly the asked count."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.filter import OUTLIER_SCORES, outlier_scores, select_top


def _blobs_with_outliers(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(200, 8))
    b = rng.normal(size=(200, 8)) + 8.0
    # Each far point alone in its own direction (6 together would form a cluster of their own).
    direction = rng.normal(size=(6, 8))
    far = 4.0 + 25.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    x = np.concatenate([a, b, far]).astype(np.float32)
    return x, np.arange(400, 406)


@pytest.mark.parametrize("method", ["glosh", "mst", "knn"])
def test_planted_outliers_score_highest(method: str) -> None:
    x, planted = _blobs_with_outliers()
    s = outlier_scores(x, method=method, k=5)
    assert s.score.shape == (406,)
    assert s.score.min() >= 0.0
    assert s.score.max() <= 1.0
    ids = np.arange(406).astype(str)
    found = np.flatnonzero(select_top(s.score, ids, 6))
    assert found.tolist() == planted.tolist()


def test_knn_score_is_the_kth_neighbour_distance_over_its_max() -> None:
    x = np.array([[0.0], [1.0], [3.0], [7.0]], dtype=np.float32)
    s = outlier_scores(x, method="knn", k=2)
    # 2nd-nearest other point: 0 -> 3, 1 -> 2, 3 -> 3, 7 -> 6
    np.testing.assert_allclose(s.raw, [3.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(s.score, [0.5, 1 / 3, 0.5, 1.0])


def test_piles_of_identical_points_give_finite_glosh_scores() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([np.zeros((40, 4)), rng.normal(size=(60, 4))]).astype(np.float32)
    s = outlier_scores(x, method="glosh", k=5)
    assert np.isfinite(s.score).all()
    assert s.score.min() >= 0.0
    assert s.score.max() <= 1.0


def test_select_top_takes_exactly_count_and_breaks_ties_by_id() -> None:
    score = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    ids = np.array(["e", "a", "c", "b", "d"])
    picked = select_top(score, ids, 3)
    assert picked.sum() == 3
    # 0.9 first, then among the 0.5s the smallest ids "b" and "c"
    assert ids[picked].tolist() == ["a", "c", "b"]
    assert not select_top(score, ids, 0).any()


def test_too_few_items_for_the_neighbours_is_refused() -> None:
    with pytest.raises(ConfigError, match="only 4 items were given; pass more items or lower k"):
        outlier_scores(np.zeros((4, 2), dtype=np.float32), method="knn", k=5)


def test_unknown_score_lists_the_valid_ones() -> None:
    assert OUTLIER_SCORES.names() == ["glosh", "knn", "mst"]
    with pytest.raises(ConfigError, match="valid: glosh, knn, mst"):
        outlier_scores(np.zeros((10, 2), dtype=np.float32), method="lof")
