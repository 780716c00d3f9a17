"""Invariants of diagnostics and the reduction search, over many generated inputs (hypothesis).

The filter's invariants live in ``test_trust_determinism.py``; these are the ones the
diagnostics and LRP-GUS parts promise: every item gets exactly one archetype, so the archetype
counts of a class sum to its size; the search never lets a class count fall below 1 or above
what T holds, and its compression stays in [0, 1).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thresher.diagnose.archetypes import ARCHETYPES, archetypes
from thresher.lrp_gus import SearchSettings, run_search
from thresher.lrp_gus.search import Score


@st.composite
def labelled_points(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    k = draw(st.integers(min_value=1, max_value=6))
    n_classes = draw(st.integers(min_value=2, max_value=4))
    sizes = [draw(st.integers(min_value=k + 1, max_value=k + 15)) for _ in range(n_classes)]
    seed = draw(st.integers(min_value=0, max_value=2**16))
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), sizes)
    spread = draw(st.floats(min_value=0.1, max_value=5.0))
    values = rng.normal(size=(len(labels), 4)) + spread * labels[:, None]
    return values.astype(np.float32), labels, k


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labelled_points())
def test_archetype_counts_sum_to_each_class_size(case: tuple[np.ndarray, np.ndarray, int]) -> None:
    values, labels, k = case
    res = archetypes(values, labels, k=k, neighbours=None)
    sizes = np.bincount(labels)
    assert np.asarray(res.counts).shape == (len(sizes), len(ARCHETYPES))
    np.testing.assert_array_equal(np.asarray(res.counts).sum(axis=1), sizes)
    # and the per-item rule agrees with the counts
    same = np.asarray(res.same_class)
    assert ((same >= 0) & (same <= k)).all()


class RandomScorer:
    """Relevance scores drawn from a seeded stream: any sequence of deltas the search may see."""

    def __init__(self, labels: np.ndarray, num_classes: int, seed: int) -> None:
        self.labels, self.num_classes = labels, num_classes
        self.rng = np.random.default_rng(seed)

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        counts = np.bincount(self.labels[positions], minlength=self.num_classes)
        f = -self.rng.random(self.num_classes) if relevance else None
        return Score(accuracy=float(self.rng.random()), f1=counts / counts.max(), f=f)


@settings(max_examples=40, deadline=None)
@given(
    p0=st.integers(min_value=1, max_value=30),
    up=st.floats(min_value=0.01, max_value=1.0),
    down=st.floats(min_value=0.01, max_value=0.99),
    lim=st.floats(min_value=0.0, max_value=1.0),
    constraint=st.sampled_from(["lower", "band"]),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_search_keeps_counts_in_range_and_compression_in_0_1(
    p0: int, up: float, down: float, lim: float, constraint: str, seed: int
) -> None:
    labels = np.repeat(np.arange(3), [30, 45, 60])
    available = np.bincount(labels)
    cfg = SearchSettings(
        p0=p0, up=up, down=down, lim=lim, constraint=constraint, iterations=15, baseline=False
    )  # type: ignore[arg-type]
    trace = run_search(labels, num_classes=3, settings=cfg, scorer=RandomScorer(labels, 3, seed))
    assert trace.records, "the search recorded no iteration"
    for rec in trace.records:
        counts = np.asarray(rec.counts)
        assert (counts >= 1).all()
        assert (counts <= available).all()
        assert rec.size == counts.sum()
        assert 0.0 <= rec.compression < 1.0
        assert rec.compression == 1.0 - rec.size / len(labels)
