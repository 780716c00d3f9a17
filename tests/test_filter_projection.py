"""Dimensionality reduction: the N_dim rule, PCA without whitening, pass-through, UMAP."""

from __future__ import annotations

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.filter import PROJECTIONS, project, target_dims


def _data(n: int = 300, d: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Very different variances per axis: whitening would erase them.
    return (rng.normal(size=(n, d)) * np.linspace(10.0, 0.1, d)).astype(np.float32)


def test_target_dims_is_the_min_of_budget_samples_and_features() -> None:
    assert target_dims(n_reduce=128, n_maps=50, n_features=64) == 50
    assert target_dims(n_reduce=10, n_maps=50, n_features=64) == 10
    assert target_dims(n_reduce=None, n_maps=500, n_features=64) == 64
    with pytest.raises(ConfigError, match="dims must be at least 1"):
        target_dims(n_reduce=0, n_maps=50, n_features=64)


def test_pca_keeps_the_variance_of_each_component() -> None:
    from sklearn.decomposition import PCA

    x = _data()
    out = project(x, method="pca", n_dims=5, seed=0)
    assert out.shape == (300, 5)
    assert out.dtype == np.float32
    ref = PCA(n_components=5).fit(x)
    # Not whitened: component variances are the data's, decreasing, far from 1.
    np.testing.assert_allclose(out.var(axis=0, ddof=1), ref.explained_variance_, rtol=1e-3)
    assert out.var(axis=0)[0] > 50


def test_pca_is_deterministic_by_seed() -> None:
    x = _data(n=2000, d=600)  # large enough for the randomised solver
    a = project(x, method="pca", n_dims=8, seed=3)
    b = project(x, method="pca", n_dims=8, seed=3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["pca", "none"])
def test_nothing_to_reduce_returns_the_features_unchanged(method: str) -> None:
    x = _data(d=8)
    np.testing.assert_array_equal(project(x, method=method, n_dims=64, seed=0), x)


def test_none_ignores_dims() -> None:
    x = _data()
    np.testing.assert_array_equal(project(x, method="none", n_dims=3, seed=0), x)


def test_unknown_reduction_lists_the_valid_ones() -> None:
    assert PROJECTIONS.names() == ["none", "pca", "umap"]
    with pytest.raises(ConfigError, match="valid: none, pca, umap"):
        project(_data(), method="tsne", n_dims=3, seed=0)


def test_umap_refuses_too_few_items() -> None:
    with pytest.raises(ConfigError, match="use projection='pca'"):
        project(_data(n=12), method="umap", n_dims=3, seed=0)


@pytest.mark.slow
def test_umap_reduces_deterministically() -> None:
    x = _data(n=400)
    a = project(x, method="umap", n_dims=3, seed=1)
    b = project(x, method="umap", n_dims=3, seed=1)
    assert a.shape == (400, 3)
    np.testing.assert_array_equal(a, b)
