"""Imbalanced-data diagnostics (Dablain et al., "Interpretable ML for Imbalanced Data").

Each analysis is a function on feature embeddings (or on the model, for colours) returning a
frozen result dataclass with ``to_dict()``/``from_dict()``, ``summary()`` and ``table()``;
:func:`thresher.workflows.diagnose_run` runs them on a run directory and stores them under ``RUN/diagnose/``.
"""

from thresher.diagnose.accuracy import ClassAccuracyResult, class_accuracy
from thresher.diagnose.adversaries import (
    METHODS,
    AdversaryResult,
    adversary_counts,
    false_positive_counts,
    fisher_ratio,
    kl_divergence,
    nearest_adversaries,
)
from thresher.diagnose.analyses import ANALYSES, resolve_only
from thresher.diagnose.archetypes import (
    ARCHETYPES,
    ArchetypeResult,
    archetype_codes,
    archetypes,
    medoid_index,
    same_class_counts,
)
from thresher.diagnose.colours import (
    COLOUR_BINS,
    ColourAccumulator,
    ColourResult,
    class_colours,
    colour_bins,
    top_pixels,
    true_class_saliency,
)
from thresher.diagnose.features import (
    FeatureDensityResult,
    TopFeaturesResult,
    feature_density,
    top_features,
    top_indices,
)
from thresher.neighbours import nearest_neighbours

__all__ = [
    "ANALYSES",
    "ARCHETYPES",
    "COLOUR_BINS",
    "METHODS",
    "AdversaryResult",
    "ArchetypeResult",
    "ClassAccuracyResult",
    "ColourAccumulator",
    "ColourResult",
    "FeatureDensityResult",
    "TopFeaturesResult",
    "adversary_counts",
    "archetype_codes",
    "archetypes",
    "class_accuracy",
    "class_colours",
    "colour_bins",
    "false_positive_counts",
    "feature_density",
    "fisher_ratio",
    "kl_divergence",
    "medoid_index",
    "nearest_adversaries",
    "nearest_neighbours",
    "resolve_only",
    "same_class_counts",
    "top_features",
    "top_indices",
    "top_pixels",
    "true_class_saliency",
]
