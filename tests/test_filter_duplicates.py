"""Near-duplicates: exact K clusters, the kept member, and scalable == exact."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError, DataError
from thresher.filter import DUPLICATE_METHODS, find_duplicates
from thresher.filter.duplicates import representatives


def _planted(n: int = 3000, d: int = 32, seed: int = 0) -> np.ndarray:
    """Clustered points (low-rank Gaussian mixture) with 5% planted near-copies."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d)) * 3.0
    bases = rng.normal(size=(20, 6, d)) * 0.5
    c = rng.integers(0, 20, size=n)
    x = centres[c] + np.einsum("nk,nkd->nd", rng.normal(size=(n, 6)), bases[c])
    x += rng.normal(size=(n, d)) * 0.05
    copies = rng.choice(n, size=n // 20, replace=False)
    sources = rng.choice(np.setdiff1d(np.arange(n), copies), size=n // 20, replace=False)
    x[copies] = x[sources] + rng.normal(size=(n // 20, d)) * 0.01
    return x.astype(np.float32)


def _removed(result: object) -> set[int]:
    return set(np.flatnonzero(~result.is_kept).tolist())  # type: ignore[attr-defined]


def test_registry_lists_the_routes() -> None:
    assert DUPLICATE_METHODS.names() == ["auto", "exact", "scalable"]
    with pytest.raises(ConfigError, match="valid: auto, exact, scalable"):
        find_duplicates(np.eye(3, dtype=np.float32), n_clusters=2, method="kmeans")


def test_exact_route_matches_scikit_learn() -> None:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score

    x = _planted(n=400)
    ours = find_duplicates(x, n_clusters=300, method="exact")
    ref = AgglomerativeClustering(n_clusters=300, metric="cosine", linkage="average").fit(x)
    assert ours.n_clusters == 300
    assert adjusted_rand_score(ref.labels_, ours.labels) == 1.0


@pytest.mark.parametrize("n_clusters", [2700, 1800])
def test_scalable_equals_exact_on_planted_duplicates(n_clusters: int) -> None:
    x = _planted()
    exact = find_duplicates(x, n_clusters=n_clusters, method="exact")
    scal = find_duplicates(x, n_clusters=n_clusters, method="scalable")
    assert scal.info["exact"] is True
    assert scal.n_clusters == exact.n_clusters == n_clusters
    a, b = _removed(exact), _removed(scal)
    assert len(a & b) / len(a | b) == 1.0  # Jaccard of the removed sets
    np.testing.assert_array_equal(scal.labels, exact.labels)
    np.testing.assert_array_equal(scal.representative, exact.representative)


def test_ivf_with_bounded_cells_is_still_exact() -> None:
    x = _planted()
    exact = find_duplicates(x, n_clusters=2400, method="exact")
    ivf = find_duplicates(x, n_clusters=2400, method="scalable", flat_max=0)
    assert ivf.info["graph"].startswith("ivf")
    assert "exact-range" in ivf.info["graph"]
    assert ivf.info["exact"] is True
    np.testing.assert_array_equal(ivf.labels, exact.labels)


def test_approximate_graph_says_so_and_still_gives_k_clusters() -> None:
    x = _planted()
    approx = find_duplicates(x, n_clusters=2400, method="scalable", flat_max=0, exact_graph_max=0)
    assert "approximate" in approx.info["graph"]
    assert approx.info["exact"] is False
    assert approx.n_clusters == 2400


def test_giant_components_fall_back_and_report_it() -> None:
    x = _planted()
    exact = find_duplicates(x, n_clusters=1800, method="exact")
    capped = find_duplicates(x, n_clusters=1800, method="scalable", max_component=4)
    assert capped.info["fallback_components"] > 0
    assert capped.info["fallback_items"] > 4
    assert capped.info["exact"] is False
    assert capped.n_clusters == 1800
    # an approximation, but of the same thing: most removals agree
    a, b = _removed(exact), _removed(capped)
    assert len(a & b) / len(a | b) > 0.5


@pytest.mark.parametrize("method", ["exact", "scalable"])
def test_each_cluster_keeps_one_member_and_the_rest_point_at_it(method: str) -> None:
    x = _planted(n=1000)
    res = find_duplicates(x, n_clusters=850, method=method)
    kept = res.is_kept
    assert kept.sum() == 850
    assert np.unique(res.labels).shape[0] == 850
    assert kept[res.representative].all()  # representatives are kept items
    np.testing.assert_array_equal(res.labels[res.representative], res.labels)  # same cluster
    # one representative per cluster
    assert np.unique(res.representative).shape[0] == 850


def test_kept_member_is_the_one_nearest_the_centre_and_ties_go_by_id() -> None:
    xn = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    labels = np.array([0, 0, 0, 1, 1])
    ids = np.array(["p", "q", "r", "z", "y"])
    rep = representatives(xn, labels, ids)
    # cluster 0: centre ~(0.8, 0.47): "q" is nearest; cluster 1: identical rows, "y" < "z"
    assert ids[rep].tolist() == ["q", "q", "q", "y", "y"]


def test_all_zero_rows_are_refused_by_id() -> None:
    x = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    with pytest.raises(DataError, match="id 'b' is all zeros"):
        find_duplicates(x, n_clusters=2, ids=np.array(["a", "b", "c"]))


def test_cluster_count_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="into 0 clusters"):
        find_duplicates(np.eye(3, dtype=np.float32), n_clusters=0)
    with pytest.raises(ConfigError, match="into 4 clusters"):
        find_duplicates(np.eye(3, dtype=np.float32), n_clusters=4)


def test_exact_route_refuses_sizes_it_cannot_hold() -> None:
    with pytest.raises(ConfigError, match="use method='scalable'"):
        find_duplicates(_planted(n=300), n_clusters=200, method="exact", max_items=100)


def test_auto_picks_exact_for_small_sets() -> None:
    assert find_duplicates(_planted(n=300), n_clusters=250, method="auto").method == "exact"


def test_results_are_deterministic() -> None:
    x = _planted()
    a = find_duplicates(x, n_clusters=2500, method="scalable", flat_max=0, seed=4)
    b = find_duplicates(x, n_clusters=2500, method="scalable", flat_max=0, seed=4)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.representative, b.representative)
