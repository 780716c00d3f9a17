"""Projection before filtering: PCA (not whitened), UMAP, or none (the thesis's N_reduce).

The thesis (section 4.2) sets ``N_dim = min(N_reduce, N_maps, N_features)``: ``N_reduce`` is the
user's budget, ``N_features`` the length of one feature vector, and ``N_maps`` the *number of
feature maps extracted*, which is one per image — the number of samples ``N`` (the thesis
writes ``N_variables = N_maps x N_features`` for the memory, and removes
``ceil(%outlier x N_maps)`` outliers). PCA cannot give more components than
``min(N, N_features)`` either, so the rule is exactly what the algorithm can deliver.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from thresher.errors import ConfigError
from thresher.registry import Registry

Projector = Callable[..., np.ndarray]
PROJECTIONS: Registry[Projector] = Registry("projection", error=ConfigError)

UMAP_NEIGHBOURS = 15


def target_dims(*, n_reduce: int | None, n_maps: int, n_features: int) -> int:
    """``N_dim = min(N_reduce, N_maps, N_features)`` (thesis section 4.2).

    Parameters
    ----------
    n_reduce : the requested number of dimensions (``None`` = no limit).
    n_maps : number of feature maps, i.e. samples (one map per image).
    n_features : features per sample.
    """
    if n_reduce is not None and int(n_reduce) < 1:
        raise ConfigError(f"dims must be at least 1, got {n_reduce}; pass e.g. dims=64")
    dims = min(int(n_maps), int(n_features))
    return dims if n_reduce is None else min(int(n_reduce), dims)


def project(
    x: np.ndarray, *, method: str = "pca", n_dims: int | None = 64, seed: int = 0
) -> np.ndarray:
    """Reduce ``(N, D)`` features to ``(N, N_dim)`` with ``N_dim`` from :func:`target_dims`.

    When ``N_dim`` equals ``D`` (nothing to reduce) or ``method="none"`` the features are
    returned unchanged (as float32): the thesis filtered 64-d ResNet features as they were.

    Parameters
    ----------
    x : ``(N, D)`` features.
    method : ``"pca"`` (scikit-learn PCA, centred, not whitened; its randomised solver is
        seeded), ``"umap"`` (``n_neighbors=15``, ``random_state=seed``) or ``"none"``.
    n_dims : ``N_reduce``; ``None`` keeps every dimension.
    seed : random state for the randomised PCA solver and UMAP.

    Returns
    -------
    ``(N, N_dim)`` float32.
    """
    reducer = PROJECTIONS.get(method)
    x = np.asarray(x, dtype=np.float32)
    n, d = x.shape
    dims = target_dims(n_reduce=n_dims, n_maps=n, n_features=d)
    if method == "none" or dims >= d:
        return x
    return np.ascontiguousarray(reducer(x, n_dims=dims, seed=seed), dtype=np.float32)


@PROJECTIONS.decorator("none")
def _none(x: np.ndarray, *, n_dims: int, seed: int) -> np.ndarray:
    return x


@PROJECTIONS.decorator("pca")
def _pca(x: np.ndarray, *, n_dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    # svd_solver="auto" picks the full, covariance or randomised solver by shape; the
    # randomised one is seeded through random_state, so every choice is deterministic.
    return PCA(n_components=n_dims, whiten=False, random_state=seed).fit_transform(x)


@PROJECTIONS.decorator("umap")
def _umap(x: np.ndarray, *, n_dims: int, seed: int) -> np.ndarray:
    n = x.shape[0]
    if n <= max(UMAP_NEIGHBOURS, n_dims + 1):
        raise ConfigError(
            f"UMAP to {n_dims} dims needs more than {max(UMAP_NEIGHBOURS, n_dims + 1)} items, "
            f"got {n}; use projection='pca' for small sets"
        )
    with warnings.catch_warnings():
        # umap warns at import (no TensorFlow for ParametricUMAP) and when random_state
        # forces a single thread; neither concerns us.
        warnings.simplefilter("ignore")
        import umap

        model = umap.UMAP(n_components=n_dims, n_neighbors=UMAP_NEIGHBOURS, random_state=seed)
        return model.fit_transform(x)
