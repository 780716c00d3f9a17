"""Archetypes: the K = 5 rules on hand-made neighbourhoods, their generalisation, medoids,
true-positive shares, empty groups and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.diagnose import (
    ARCHETYPES,
    archetype_codes,
    archetypes,
    medoid_index,
    nearest_neighbours,
    same_class_counts,
)
from thresher.errors import ConfigError, DataError


def test_k5_rules_match_the_paper() -> None:
    codes = archetype_codes(np.array([5, 4, 3, 2, 1, 0]), k=5)
    assert [ARCHETYPES[c] for c in codes] == [
        "safe",
        "safe",
        "border",
        "border",
        "rare",
        "outlier",
    ]


def test_rules_scale_with_k() -> None:
    # K = 10: safe 8-10, border 4-7, rare 1-3, outlier 0.
    names = [ARCHETYPES[c] for c in archetype_codes(np.arange(11), k=10)]
    assert names == ["outlier"] + ["rare"] * 3 + ["border"] * 4 + ["safe"] * 3
    # K = 1: the only neighbour decides safe or outlier.
    assert [ARCHETYPES[c] for c in archetype_codes(np.array([0, 1]), k=1)] == ["outlier", "safe"]


def test_counts_outside_zero_to_k_are_refused() -> None:
    with pytest.raises(DataError, match=r"must lie in \[0, 5\]"):
        archetype_codes(np.array([6]), k=5)


def test_same_class_counts_on_a_hand_made_neighbourhood() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    neighbours = np.array(
        [
            [1, 4, 2, 3, 5],  # 2 of class 0 -> border
            [0, 4, 2, 3, 5],  # 2
            [3, 5, 0, 1, 4],  # 2 of class 1
            [2, 5, 0, 1, 4],
            [0, 1, 2, 3, 5],
            [2, 3, 0, 1, 4],
        ]
    )
    assert same_class_counts(labels, neighbours).tolist() == [2, 2, 2, 2, 2, 2]


def _clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two tight, far-apart clusters of 8 items, plus an item of class 1 inside cluster 0."""
    a = rng.normal(0, 0.01, size=(8, 2))
    b = rng.normal(10, 0.01, size=(8, 2))
    stray = np.array([[0.0, 0.0]])
    x = np.vstack([a, b, stray]).astype(np.float32)
    y = np.array([0] * 8 + [1] * 8 + [1])
    return x, y


def test_archetypes_on_known_geometry_and_tp_shares() -> None:
    x, y = _clusters(np.random.default_rng(0))
    pred = y.copy()
    pred[16] = 0  # the stray item is misclassified
    res = archetypes(x, y, predictions=pred, k=5, classes=("a", "b"))
    assert ARCHETYPES[res.archetype[16]] == "outlier"  # all 5 neighbours are class 0
    assert all(ARCHETYPES[c] == "safe" for c in res.archetype[8:16])
    assert res.counts[1].tolist() == [8, 0, 0, 1]
    share = res.tp_share
    assert share[1, 0] == 1.0
    assert share[1, 3] == 0.0
    assert np.isnan(share[1, 1])
    assert np.isnan(share[1, 2])
    assert ("b", "border") in res.empty_groups
    assert ("b", "rare") in res.empty_groups
    assert res.prototype[1, 1] == -1
    assert res.prototype[1, 3] == 16
    table = res.table()
    assert ["b", "border", "0", "-", "(empty)"] in table


def test_round_trip_through_dict() -> None:
    x, y = _clusters(np.random.default_rng(1))
    res = archetypes(x, y, k=3)
    again = type(res).from_dict(res.to_dict())
    assert again.classes == res.classes
    assert again.ids == res.ids
    np.testing.assert_array_equal(again.counts, res.counts)
    assert (again.true_positives == -1).all()  # no predictions: unknown


def test_medoid_is_the_central_item() -> None:
    pts = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert medoid_index(pts) == 2
    big = np.random.default_rng(0).normal(size=(300, 2))
    big[17] = 0.0
    assert medoid_index(big, exact_max=10_000) == medoid_index(big, exact_max=10_000)
    sampled = medoid_index(big, exact_max=100, seed=3)
    assert 0 <= sampled < 300


def test_neighbours_match_brute_force_and_exclude_self() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    found = nearest_neighbours(x, k=4)
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    expected = np.argsort(d, axis=1)[:, :4]
    np.testing.assert_array_equal(found, expected)


def test_duplicates_are_neighbours_but_self_is_not() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0]], dtype=np.float32)
    found = nearest_neighbours(x, k=2)
    for i in range(3):
        assert i not in found[i]
        assert set(found[i]) == {0, 1, 2} - {i}


# --- bad input ----------------------------------------------------------------------------------
def _xy(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4)).astype(np.float32), np.arange(n) % 2


def test_class_smaller_than_k_plus_one() -> None:
    x, y = _xy()
    y[:] = 0
    y[:3] = 1  # class "b" has 3 items: K = 5 needs 6
    with pytest.raises(DataError, match=r"class 'b' has 3 items, fewer than k \+ 1 = 6"):
        archetypes(x, y, k=5, classes=("a", "b"))


def test_single_class() -> None:
    x, y = _xy()
    with pytest.raises(DataError, match="hold a single class"):
        archetypes(x, np.zeros_like(y), k=5)


def test_missing_labels() -> None:
    x, _ = _xy()
    with pytest.raises(DataError, match="needs labels but the data are unlabelled"):
        archetypes(x, None, k=5)


def test_mismatched_lengths() -> None:
    x, y = _xy()
    with pytest.raises(DataError, match=r"labels have shape \(19,\) but there are 20 items"):
        archetypes(x, y[:-1], k=5)
    with pytest.raises(DataError, match="19 ids for 20 embeddings"):
        archetypes(x, y, k=5, ids=[str(i) for i in range(19)])


def test_nan_embeddings() -> None:
    x, y = _xy()
    x[7, 2] = np.nan
    with pytest.raises(DataError, match="at row 7 contains NaN or inf"):
        archetypes(x, y, k=5)


def test_bad_k() -> None:
    x, y = _xy()
    with pytest.raises(ConfigError, match="k must be an integer >= 1"):
        archetypes(x, y, k=0)


def test_ivf_neighbours_agree_with_exact_ones() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16)) * 5
    x = (centres[rng.integers(0, 20, 4000)] + rng.normal(size=(4000, 16))).astype(np.float32)
    exact = nearest_neighbours(x, k=5, method="exact")
    approx = nearest_neighbours(x, k=5, method="ivf", nprobe=8)
    same = np.mean([set(a) == set(b) for a, b in zip(exact, approx, strict=True)])
    assert same > 0.9
    assert not (approx == np.arange(4000)[:, None]).any()  # self still excluded
    with pytest.raises(ConfigError, match="unknown neighbour method 'hnsw'"):
        nearest_neighbours(x, k=5, method="hnsw")  # type: ignore[arg-type]
