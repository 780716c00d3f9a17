"""Nearest adversaries vs validation false positives (Algorithm 1, Table II): counts, KL
divergence and Fisher's ratio against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thresher.diagnose import (
    adversary_counts,
    false_positive_counts,
    fisher_ratio,
    kl_divergence,
    nearest_adversaries,
)
from thresher.errors import ConfigError, DataError


def test_kld_against_a_hand_computation() -> None:
    # P = (1/2, 1/4, 1/4), Q = (1/4, 1/4, 1/2): KL = 1/2 ln 2 + 1/4 ln(1/2) = 1/4 ln 2.
    got = kl_divergence(np.array([2, 1, 1]), np.array([1, 1, 2]), eps=1e-12)
    assert got == pytest.approx(0.25 * math.log(2), rel=1e-9)


def test_kld_smoothing_keeps_disjoint_supports_finite() -> None:
    # p' = (1.001, 0.001) / 1.002 and q' reversed: KL = (p0 - p1) ln(p0 / p1) = (1/1.002) ln 1001.
    got = kl_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]), eps=1e-3)
    assert got == pytest.approx((1.0 / 1.002) * math.log(1001), rel=1e-9)
    assert kl_divergence(np.array([3, 1]), np.array([3, 1])) == pytest.approx(0.0, abs=1e-12)


def test_kld_does_not_depend_on_the_units_of_the_weights() -> None:
    # Counts in the hundreds and the same forecast as probabilities score alike, so NNB counts,
    # 1/FDR weights and random shares are smoothed equally.
    p = np.array([5.0, 3.0, 0.0, 2.0])
    q = np.array([300.0, 0.0, 100.0, 600.0])
    got = kl_divergence(p, q)
    assert kl_divergence(p, q / q.sum()) == pytest.approx(got, rel=1e-12)
    assert kl_divergence(10 * p, q) == pytest.approx(got, rel=1e-12)


def test_kld_bad_input() -> None:
    with pytest.raises(DataError, match="two vectors of one length"):
        kl_divergence(np.ones(3), np.ones(2))
    with pytest.raises(DataError, match="finite non-negative"):
        kl_divergence(np.array([1.0, np.nan]), np.ones(2))


def test_fisher_ratio_against_a_hand_computation() -> None:
    # feature 0: class 0 {0, 2} (mean 1, var 1), class 1 {4, 6} (mean 5, var 1) -> 16 / 2 = 8
    # feature 1: class 0 {1, 1} (var 0), class 1 {1, 3} (mean 2, var 1) -> 1 / 1 = 1
    # feature 2: constant 7 in both: zero pooled variance, left out. Mean of (8, 1) = 4.5.
    x = np.array([[0, 1, 7], [2, 1, 7], [4, 1, 7], [6, 3, 7]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    fdr = fisher_ratio(x, y, num_classes=3)
    assert fdr[0, 1] == pytest.approx(4.5)
    assert fdr[1, 0] == pytest.approx(4.5)
    assert np.isnan(fdr[0, 0])
    assert np.isnan(fdr[0, 2])


def test_adversary_counts_on_a_hand_made_neighbourhood() -> None:
    labels = np.array([0, 0, 1, 2])
    neighbours = np.array([[1, 2], [0, 3], [0, 1], [2, 0]])
    counts = adversary_counts(labels, neighbours, num_classes=3)
    assert counts.tolist() == [[0, 1, 1], [2, 0, 0], [1, 1, 0]]
    # Algorithm 1 read literally: only item 1 (a class-0 item predicted as 1) counts, for R = 1.
    fp = adversary_counts(
        labels,
        neighbours,
        num_classes=3,
        predictions=np.array([0, 1, 1, 2]),
        false_positives_only=True,
    )
    assert fp.tolist() == [[0, 0, 0], [1, 0, 1], [0, 0, 0]]


def test_false_positive_counts() -> None:
    v = false_positive_counts(np.array([0, 1, 2, 1]), np.array([1, 1, 1, 0]), num_classes=3)
    assert v.tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]


def _three_classes() -> tuple[np.ndarray, np.ndarray]:
    """Classes 0 and 1 overlap, class 2 lies far away."""
    rng = np.random.default_rng(0)
    x = np.vstack(
        [rng.normal(0, 1, (60, 4)), rng.normal(0.5, 1, (60, 4)), rng.normal(20, 1, (60, 4))]
    ).astype(np.float32)
    return x, np.repeat(np.arange(3), 60)


def test_nearest_adversaries_forecast_beats_random() -> None:
    x, y = _three_classes()
    # validation: class-1 items predicted as 0 and vice versa, one class-2 item predicted as 0
    # (which the far-away class 2's neighbours cannot forecast); nothing predicted as 2.
    vy = np.array([1] * 9 + [2] + [0] * 7 + [2] * 9)
    vp = np.array([0] * 9 + [0] + [1] * 7 + [2] * 9)
    res = nearest_adversaries(x, y, vy, vp, k=5, classes=("a", "b", "c"), seed=1)
    assert res.validation_fp[0].tolist() == [0, 9, 1]
    assert res.nnb_counts[0, 1] > 0
    assert res.nnb_counts[0, 2] == 0
    assert np.isnan(res.kld[:, 2]).all()  # no validation FPs for class 2: left out
    others = [1, 2]
    assert res.kld[0, 0] == pytest.approx(
        kl_divergence(res.validation_fp[0, others], res.nnb_counts[0, others])
    )
    t = res.table_ii
    assert t["nnb"] == pytest.approx(np.nanmean(res.kld[0]))
    assert t["nnb"] < t["random"]
    assert t["random_over_nnb"] == pytest.approx(t["random"] / t["nnb"])
    again = nearest_adversaries(x, y, vy, vp, k=5, classes=("a", "b", "c"), seed=1)
    np.testing.assert_array_equal(again.kld, res.kld)  # deterministic given the seed
    assert type(res).from_dict(res.to_dict()).table_ii == pytest.approx(t, nan_ok=True)


def test_missing_validation_labels() -> None:
    x, y = _three_classes()
    with pytest.raises(DataError, match="need the validation labels and predictions"):
        nearest_adversaries(x, y, None, None, k=5)


def test_mismatched_validation_lengths() -> None:
    x, y = _three_classes()
    with pytest.raises(DataError, match=r"validation predictions have shape \(3,\)"):
        nearest_adversaries(x, y, np.array([0, 1, 2, 0]), np.array([0, 1, 2]), k=5)


def test_single_class_and_small_class() -> None:
    x, y = _three_classes()
    vy = vp = np.array([0, 1])
    with pytest.raises(DataError, match="single class"):
        nearest_adversaries(x, np.zeros_like(y), vy, vp, k=5)
    y2 = y.copy()
    y2[:-2] = 0
    y2[-2:] = 1
    with pytest.raises(DataError, match="fewer than k \\+ 1"):
        nearest_adversaries(x, y2, vy, vp, k=5)


def _long_tailed_neighbourhood() -> tuple[
    np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray
]:
    """Training: 6 items of class 0, 8 of the head class 1, 2 of the tail class 2 (k = 1).

    Four class-0 items have a class-1 neighbour and two a class-2 neighbour: ``N[0] = (., 4, 2)``.
    The balanced validation set (3 per class) mistakes one class-1 and two class-2 items for 0.
    """
    y = np.repeat([0, 1, 2], [6, 8, 2])
    nb = np.array([[6], [6], [6], [6], [14], [14]] + [[7]] + [[6]] * 7 + [[15], [14]])
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    vy = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    vp = np.array([0, 0, 0, 0, 1, 1, 0, 0, 2])
    return x, y, nb, vy, vp


def test_class_prior_weighting_against_a_hand_computation() -> None:
    x, y, nb, vy, vp = _long_tailed_neighbourhood()
    kw = {"k": 1, "neighbours": nb, "eps": 1e-12}
    # paper: Q_0 = (4, 2) / 6 = (2/3, 1/3) against P_0 = (1/3, 2/3): KL = (1/3) ln 2
    paper = nearest_adversaries(x, y, vy, vp, weighting="paper", **kw)
    assert paper.nnb_counts[0].tolist() == [0, 4, 2]
    assert paper.kld[0, 0] == pytest.approx(math.log(2) / 3, rel=1e-6)
    np.testing.assert_array_equal(paper.nnb_forecast, paper.nnb_counts)
    # class-prior: (4 * 3/8, 2 * 3/2) = (1.5, 3) ∝ (1/3, 2/3) = P_0 exactly: KL = 0
    prior = nearest_adversaries(x, y, vy, vp, **kw)  # the default
    assert prior.weighting == "class-prior"
    assert prior.nnb_forecast[0].tolist() == pytest.approx([0.0, 1.5, 3.0])
    assert prior.kld[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert prior.nnb_counts.tolist() == paper.nnb_counts.tolist()  # the counts stay raw
    np.testing.assert_allclose(prior.nnb_share[0], [0.0, 1 / 3, 2 / 3])  # Fig. 5b draws Q
    assert prior.summary()["weighting"] == "class-prior"


def test_class_prior_is_the_paper_when_training_and_validation_proportions_match() -> None:
    x, y = _three_classes()  # 60 per class
    vy = np.repeat(np.arange(3), 4)  # 4 per class: every column scaled by the same 4/60
    vp = np.array([0, 0, 1, 2, 0, 1, 1, 1, 0, 1, 2, 2])
    a = nearest_adversaries(x, y, vy, vp, k=5, weighting="paper", seed=1)
    b = nearest_adversaries(x, y, vy, vp, k=5, weighting="class-prior", seed=1)
    np.testing.assert_allclose(b.nnb_forecast, a.nnb_counts * 4 / 60)
    np.testing.assert_allclose(b.kld, a.kld, equal_nan=True)


def test_unknown_weighting_is_refused_with_the_choices() -> None:
    x, y, nb, vy, vp = _long_tailed_neighbourhood()
    with pytest.raises(
        ConfigError, match="unknown NNB weighting 'prior'; use one of class-prior, paper"
    ):
        nearest_adversaries(x, y, vy, vp, k=1, neighbours=nb, weighting="prior")


def test_results_stored_before_the_weighting_load_as_the_paper() -> None:
    x, y, nb, vy, vp = _long_tailed_neighbourhood()
    res = nearest_adversaries(x, y, vy, vp, k=1, neighbours=nb, weighting="paper")
    old = res.to_dict()
    for field in ("weighting", "nnb_forecast", "cross_class_share"):
        del old[field]
    loaded = type(res).from_dict(old)
    assert loaded.weighting == "paper"
    assert loaded.nnb_forecast is None
    np.testing.assert_allclose(loaded.nnb_share[0], [0.0, 2 / 3, 1 / 3])  # from the raw counts
    assert "cross_class_share" not in loaded.summary()


def test_separated_training_embeddings_are_flagged() -> None:
    # Three far-apart clusters: no K-NN pair crosses classes, as in the embeddings of a model
    # that has memorised its training set; the NNB forecast then has nothing to stand on.
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(100 * c, 1, (30, 4)) for c in range(3)]).astype(np.float32)
    y = np.repeat(np.arange(3), 30)
    vy, vp = np.array([0, 1, 2, 1]), np.array([1, 0, 2, 1])
    sep = nearest_adversaries(x, y, vy, vp, k=5)
    assert sep.cross_class_share == 0.0
    assert "training embeddings separate the classes" in sep.summary()["warning"]
    x2, y2 = _three_classes()  # classes 0 and 1 overlap: about a third of their pairs cross
    mixed = nearest_adversaries(x2, y2, vy, vp, k=5)
    assert mixed.cross_class_share > 0.1
    assert "warning" not in mixed.summary()
