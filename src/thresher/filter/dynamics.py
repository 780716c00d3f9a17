"""Selectors by training dynamics: EL2N, GraNd, forgetting events (keep the hard images).

The scores come from :func:`thresher.train.dynamics.training_dynamics` (one full training per
seed); over a run directory the ``filter`` workflow computes and caches them when one of these
selectors is asked for. All three remove the *easiest* images first (lowest score), as the
papers prune: Paul et al. 2021 keep the highest EL2N/GraNd, Toneva et al. 2019 drop the
unforgettable images first. Ties (e.g. the many images never forgotten) go in id order.
"""

from __future__ import annotations

import numpy as np

from thresher.filter.baselines import SelectionInput, register_selector


@register_selector(
    "el2n",
    description="EL2N (Paul et al. 2021): drop the images with the smallest early-training "
    "error norm first",
    needs_embeddings=False,
    needs_labels=True,
    needs_signals=("el2n",),
)
def el2n(inputs: SelectionInput) -> np.ndarray:
    """Removal score = minus the mean EL2N over seeds."""
    return -np.asarray(inputs.signals["el2n"], dtype=np.float64)


@register_selector(
    "grand",
    description="GraNd (Paul et al. 2021): drop the images with the smallest early-training "
    "gradient norm (classifier layer) first",
    needs_embeddings=False,
    needs_labels=True,
    needs_signals=("grand",),
)
def grand(inputs: SelectionInput) -> np.ndarray:
    """Removal score = minus the mean GraNd over seeds."""
    return -np.asarray(inputs.signals["grand"], dtype=np.float64)


@register_selector(
    "forgetting",
    description="forgetting events (Toneva et al. 2019): drop the images forgotten least "
    "often during training first",
    needs_embeddings=False,
    needs_labels=True,
    needs_signals=("forgetting",),
)
def forgetting(inputs: SelectionInput) -> np.ndarray:
    """Removal score = minus the mean number of forgetting events over seeds."""
    return -np.asarray(inputs.signals["forgetting"], dtype=np.float64)
