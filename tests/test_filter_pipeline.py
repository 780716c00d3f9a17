"""filter_dataset end to end: exact counts, representatives, determinism, bad inputs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from thresher.errors import ConfigError, DataError
from thresher.filter import FilterResult, filter_dataset
from thresher.filter.pipeline import preset

# These synthetic sets plant outliers by Euclidean distance, the thesis's notion: test the
# thesis preset on them (the default is judged on real planted data, test_filter_planted.py).
THESIS = preset("thesis")


def _dataset(
    n: int = 1000, d: int = 16, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three labelled Gaussian classes; 30 planted near-copies (with their sources) and
    10 planted isolated outliers. Returns ``(x, labels, copies, sources, outliers)``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    centres = rng.normal(size=(3, d)) * 6.0
    x = centres[labels] + rng.normal(size=(n, d))
    perm = rng.permutation(n)
    copies, sources, outliers = perm[:30], perm[30:60], perm[60:70]
    x[copies] = x[sources] + rng.normal(size=(30, d)) * 1e-3
    labels[copies] = labels[sources]
    direction = rng.normal(size=(10, d))
    x[outliers] = 40.0 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    return x.astype(np.float32), labels, copies, sources, outliers


def test_exact_counts_and_planted_items_found() -> None:
    x, labels, copies, sources, outliers = _dataset()
    res = filter_dataset(x, labels=labels, outliers=0.01, similar=0.03, seed=0, **THESIS)
    assert res.counts["outlier"] == 10  # ceil(0.01 * 1000)
    assert res.counts["kept"] == 960  # floor(0.96 * 1000)
    assert res.counts["similar"] == 30
    assert set(np.flatnonzero(res.is_outlier)) == set(outliers.tolist())
    # each planted pair loses exactly one member, which names the other
    for c, s in zip(copies, sources, strict=True):
        gone, stay = (c, s) if res.is_similar[c] else (s, c)
        assert res.is_similar[gone]
        assert res.kept[stay]
        assert res.representative_id[gone] == res.ids[stay]


def test_representatives_are_kept_and_scores_are_similarities() -> None:
    x, labels, *_ = _dataset()
    res = filter_dataset(x, labels=labels, outliers=0.05, similar=0.15, seed=0)
    sim = res.is_similar
    position = {i: k for k, i in enumerate(res.ids)}
    reps = np.array([position[r] for r in res.representative_id[sim]])
    assert res.kept[reps].all()
    assert (res.representative_id[~sim] == "").all()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = np.einsum("ij,ij->i", xn[sim], xn[reps])
    np.testing.assert_allclose(res.score[sim], np.clip(cos, 0, 1), atol=1e-5)
    # kept items and outliers carry the outlier score
    np.testing.assert_array_equal(res.score[~sim], res.outlier_score[~sim])


def test_per_class_counts_are_exact() -> None:
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], [110, 290, 600])
    x = rng.normal(size=(1000, 8)).astype(np.float32) + labels[:, None] * 4.0
    res = filter_dataset(x, labels=labels, outliers=0.05, similar=0.10, per_class=True)
    assert res.per_class == {
        0: {"total": 110, "kept": 94, "outlier": 6, "label": 0, "similar": 10, "other": 0},
        1: {"total": 290, "kept": 246, "outlier": 14, "label": 0, "similar": 30, "other": 0},
        2: {"total": 600, "kept": 510, "outlier": 30, "label": 0, "similar": 60, "other": 0},
    }
    # near-duplicates point at a kept item of their own class
    position = {i: k for k, i in enumerate(res.ids)}
    for row in np.flatnonzero(res.is_similar):
        rep = position[res.representative_id[row]]
        assert res.kept[rep]
        assert labels[rep] == labels[row]
    assert res.params["label_source"] == "labels"


def test_unlabelled_data_filter_and_use_predictions_for_per_class() -> None:
    x, labels, *_ = _dataset(n=600)
    plain = filter_dataset(x, outliers=0.05, similar=0.05)
    assert plain.labels is None
    assert plain.per_class == {
        "all": {"total": 600, "kept": 540, "outlier": 30, "label": 0, "similar": 30, "other": 0}
    }
    by_pred = filter_dataset(x, predictions=labels, outliers=0.05, similar=0.05, per_class=True)
    assert by_pred.params["label_source"] == "predictions"
    np.testing.assert_array_equal(by_pred.labels, labels)
    assert sum(row["kept"] for row in by_pred.per_class.values()) == 540
    with pytest.raises(ConfigError, match="needs class labels or model predictions"):
        filter_dataset(x, per_class=True)


def test_same_seed_same_result() -> None:
    x, labels, *_ = _dataset(n=600)
    kwargs = {"labels": labels, "outliers": 0.05, "similar": 0.2, "projection": "pca", "dims": 4}
    a = filter_dataset(x, seed=7, **kwargs)
    b = filter_dataset(x, seed=7, **kwargs)
    assert a.to_table().equals(b.to_table())
    assert a.params == b.params


def test_embeddings_object_scalable_route_and_table_round_trip() -> None:
    x, labels, *_ = _dataset(n=800)
    emb = SimpleNamespace(
        values=x, ids=np.array([f"s{i}" for i in range(800)]), labels=labels, predictions=None
    )
    kw = {"per_class": False, "outlier_score": "knn"}
    exact = filter_dataset(emb, outliers=0.02, similar=0.1, method="exact", **kw)
    scal = filter_dataset(emb, outliers=0.02, similar=0.1, method="scalable", **kw)
    assert exact.ids[0] == "s0"
    np.testing.assert_array_equal(exact.reason, scal.reason)
    np.testing.assert_array_equal(exact.representative_id, scal.representative_id)
    assert scal.params["groups"]["all"]["duplicates"]["exact"] is True
    back = FilterResult.from_table(scal.to_table())
    np.testing.assert_array_equal(back.reason, scal.reason)
    assert back.params["method"] == "scalable"


def test_outliers_in_the_original_space_by_default() -> None:
    x, *_ = _dataset(n=300)
    res = filter_dataset(x, outliers=0.05, similar=0.0, dims=3)
    assert res.params["outlier_space"] == "original"
    assert res.params["n_dims"] == 3
    red = filter_dataset(x, outliers=0.05, similar=0.0, dims=3, outlier_space="reduced")
    assert red.params["outlier_space"] == "reduced"


def test_zero_percentages_keep_everything() -> None:
    x, *_ = _dataset(n=200)
    res = filter_dataset(x, outliers=0.0, similar=0.0)
    assert res.kept.all()
    assert res.outlier_scores is None


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"outliers": 1.5}, ConfigError, "outliers must be a fraction in \\[0, 1\\)"),
        ({"similar": 5}, ConfigError, "for 5% pass 0.05"),
        ({"outliers": -0.1}, ConfigError, "outliers must be a fraction"),
        ({"outliers": 0.6, "similar": 0.4}, ConfigError, "removes everything"),
        ({"outliers": 0.5, "similar": 0.49}, ConfigError, "keep floor"),
        ({"method": "fast"}, ConfigError, "valid: auto, exact, scalable"),
        ({"projection": "tsne"}, ConfigError, "valid: none, pca, umap"),
        ({"outlier_score": "lof"}, ConfigError, "valid: glosh, knn, mst"),
        ({"outlier_space": "raw"}, ConfigError, "valid: auto, original, reduced"),
        ({"labels": np.zeros(5)}, DataError, "labels has shape \\(5,\\)"),
        ({"ids": ["a"] * 20}, DataError, "id 'a' occurs 20 times"),
    ],
)
def test_bad_arguments_name_problem_and_fix(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    x = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with pytest.raises(error, match=message):
        filter_dataset(x, **kwargs)  # type: ignore[arg-type]


def test_non_finite_embeddings_name_the_first_bad_id() -> None:
    x = np.ones((10, 3), dtype=np.float32)
    x[4, 1] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(DataError, match="id 'e' contains NaN or inf \\(2 bad rows"):
        filter_dataset(x, ids=list("abcdefghij"))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.ones((1, 3), dtype=np.float32), "got 1 item"),
        (np.ones(5, dtype=np.float32), "2-D"),
    ],
)
def test_unusable_shapes_are_refused(x: np.ndarray, message: str) -> None:
    with pytest.raises(DataError, match=message):
        filter_dataset(x)


def test_too_few_items_for_the_outlier_neighbours() -> None:
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="more than k=10 neighbours; lower k"):
        filter_dataset(x, outliers=0.25, similar=0.0)
    labels = np.array([0, 0, 0, 1] * 5)
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match="class 1 has 5 items"):
        filter_dataset(x, labels=labels, per_class=True, outliers=0.2, similar=0.0)


def test_default_per_class_scores_a_small_class_with_all_its_members() -> None:
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    labels = np.r_[np.zeros(54, int), np.ones(6, int)]
    res = filter_dataset(x, labels=labels, outliers=0.1, similar=0.0)  # per class by default
    assert res.counts["outlier"] == 6
    assert res.params["groups"]["1"]["k"] == 5  # the 6-item class: its 5 other members
    assert "k" not in res.params["groups"]["0"]
    with pytest.raises(ConfigError, match="class 1 has 6 items"):
        filter_dataset(x, labels=labels, outliers=0.1, similar=0.0, per_class=True)
