"""Pruning selectors against slow reference implementations on small data."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.filter import SELECTORS, select
from thresher.filter.pruning import herding_order, kcenter_order, prototype_distance


def slow_kcenter(x: np.ndarray, first: int) -> list[int]:
    """Farthest-first traversal, written as the definition reads."""
    chosen = [first]
    while len(chosen) < len(x):
        best, best_d = -1, -1.0
        for i in range(len(x)):
            if i in chosen:
                continue
            d = min(float(np.sum((x[i] - x[c]) ** 2)) for c in chosen)
            if d > best_d + 1e-9:
                best, best_d = i, d
        chosen.append(best)
    return chosen


def slow_herding(x: np.ndarray) -> list[int]:
    mu = x.mean(axis=0)
    chosen: list[int] = []
    while len(chosen) < len(x):
        best, best_d = -1, np.inf
        for i in range(len(x)):
            if i in chosen:
                continue
            d = float(np.sum((mu - x[[*chosen, i]].mean(axis=0)) ** 2))
            if d < best_d - 1e-12:
                best, best_d = i, d
        chosen.append(best)
    return chosen


@pytest.fixture
def points() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(30, 4))


def test_kcenter_matches_the_definition(points: np.ndarray) -> None:
    first = int(np.random.default_rng(5).integers(len(points)))
    order = kcenter_order(points, picks=len(points), seed=5)
    assert order.tolist() == slow_kcenter(points, first)
    # stopping early ranks the rest by distance to the centres so far (farthest first)
    short = kcenter_order(points, picks=10, seed=5)
    assert short[:10].tolist() == order[:10].tolist()
    assert sorted(short.tolist()) == list(range(len(points)))


def test_herding_matches_the_definition(points: np.ndarray) -> None:
    order = herding_order(points, picks=len(points))
    assert order.tolist() == slow_herding(points)
    assert herding_order(points, picks=7)[:7].tolist() == order[:7].tolist()


def test_prototype_distance_finds_the_cluster_centres() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(scale=1.0, size=(40, 2)) for c in centres])
    x[0] = centres[0]  # a point exactly at a centre's direction
    dist = prototype_distance(x, clusters=2, seed=0)
    assert dist.shape == (80,)
    assert dist[0] < np.median(dist[:40])
    assert np.all(dist >= -1e-6)


@pytest.mark.parametrize("name", ["kcenter", "herding", "ssp"])
def test_selectors_keep_exact_counts_deterministically(name: str, points: np.ndarray) -> None:
    ids = np.array([f"p{i:02d}" for i in range(30)])
    labels = np.repeat([0, 1, 2], 10)
    a = select(name, points, ids=ids, labels=labels, keep=0.6, seed=1)
    b = select(name, points, ids=ids, labels=labels, keep=0.6, seed=1)
    assert a.kept.sum() == 18
    assert np.array_equal(a.kept, b.kept)
    assert set(a.reason[~a.kept]) == {name}
    strat = select(name, points, ids=ids, labels=labels, keep=0.6, seed=1, stratified=True)
    assert np.bincount(labels[strat.kept], minlength=3).tolist() == [6, 6, 6]
    assert SELECTORS.get(name).needs_embeddings


def test_kcenter_keeps_the_spread_and_herding_the_mean() -> None:
    # a dense blob plus four far corners: k-center keeps the corners first; herding keeps
    # items whose mean is the data's mean, so not the corners
    rng = np.random.default_rng(0)
    blob = rng.normal(scale=0.1, size=(40, 2))
    corners = np.array([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    x = np.concatenate([blob, corners])
    ids = np.array([f"x{i:02d}" for i in range(len(x))])
    kc = select("kcenter", x, ids=ids, keep=0.2, seed=0)
    assert kc.kept[40:].all()
    hd = select("herding", x, ids=ids, keep=0.2)
    assert not hd.kept[40:].all()
