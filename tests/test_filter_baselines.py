"""Baselines: random subsampling and FiftyOne's uniqueness, with exact kept counts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.filter import SELECTORS, random_subset, uniqueness, uniqueness_scores


def test_uniqueness_matches_a_hand_computation() -> None:
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=np.float32)
    # distances to the 3 nearest others, weighted 0.6 / 0.3 / 0.1 (the /3 of the mean
    # cancels in the normalisation):
    #   0: 1, 3, 6 -> 2.1     1: 1, 2, 5 -> 1.7     3: 2, 3, 3 -> 2.4
    #   6: 3, 4, 5 -> 3.5    10: 4, 7, 9 -> 5.4
    expected = np.array([2.1, 1.7, 2.4, 3.5, 5.4]) / 5.4
    np.testing.assert_allclose(uniqueness_scores(x), expected, rtol=1e-6)


def test_uniqueness_drops_the_least_unique_first() -> None:
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=np.float32)
    res = uniqueness(x, keep=0.6, ids=["a", "b", "c", "d", "e"])
    assert res.kept_ids.tolist() == ["c", "d", "e"]
    assert res.reason.tolist() == ["uniqueness", "uniqueness", "kept", "kept", "kept"]
    np.testing.assert_allclose(res.score, 1 - np.array([2.1, 1.7, 2.4, 3.5, 5.4]) / 5.4, rtol=1e-6)
    assert res.method == "uniqueness"


def test_three_points_or_fewer_are_all_fully_unique() -> None:
    assert uniqueness_scores(np.zeros((3, 2), dtype=np.float32)).tolist() == [1.0, 1.0, 1.0]


def test_uniqueness_stratified_keeps_its_share_of_every_class() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    labels = np.repeat([0, 1], [30, 70])
    res = uniqueness(x, keep=0.75, labels=labels, stratified=True)
    # keep quotas 22.5 / 52.5 -> 22 + 52 + the missing unit to the first tie
    assert res.per_class[0]["kept"] == 23
    assert res.per_class[1]["kept"] == 52
    assert res.per_class[0]["other"] == 7


def test_random_subset_keeps_exactly_floor_keep_n_and_is_seeded() -> None:
    ids = [f"img{i}" for i in range(101)]
    a = random_subset(ids, keep=0.9, seed=1)
    b = random_subset(ids, keep=0.9, seed=1)
    c = random_subset(ids, keep=0.9, seed=2)
    assert a.kept.sum() == 90  # floor(90.9)
    np.testing.assert_array_equal(a.kept, b.kept)
    assert not np.array_equal(a.kept, c.kept)
    # the removed items are the highest random priorities
    assert a.score[~a.kept].min() > a.score[a.kept].max()
    assert set(a.reason) == {"kept", "random"}


def test_random_subset_stratified_counts_and_embeddings_input() -> None:
    labels = np.repeat([0, 1, 2], [10, 30, 60])
    emb = SimpleNamespace(ids=np.arange(100).astype(str), labels=labels)
    res = random_subset(emb, keep=0.5, seed=0, stratified=True)
    assert {c: row["kept"] for c, row in res.per_class.items()} == {0: 5, 1: 15, 2: 30}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": 90}, "pass 0.9"),
        ({"keep": 0.001}, "keeps none"),
        ({"keep": 0.5, "stratified": True}, "needs labels"),
    ],
)
def test_bad_baseline_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        random_subset([str(i) for i in range(10)], **kwargs)  # type: ignore[arg-type]


def test_registry_lists_the_selectors_as_records() -> None:
    assert {"random", "uniqueness", "kcenter", "herding", "ssp"} <= set(SELECTORS.names())
    record = SELECTORS.get("uniqueness")
    assert record.name == "uniqueness"
    assert record.needs_embeddings
    assert not SELECTORS.get("random").needs_embeddings
    assert record.params["weights"] == [0.6, 0.3, 0.1]
