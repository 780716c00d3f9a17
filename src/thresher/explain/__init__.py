"""Explanations: LRP relevance maps (zennit) and the LRP-GUS class scores."""

from thresher.explain.composites import CANONIZERS, COMPOSITES, make_composite
from thresher.explain.lrp import (
    ClassRelevance,
    LRPSettings,
    class_relevance,
    explain_classes,
    lrp_maps,
    negative_intensity,
    normalise_maps,
)

__all__ = [
    "CANONIZERS",
    "COMPOSITES",
    "ClassRelevance",
    "LRPSettings",
    "class_relevance",
    "explain_classes",
    "lrp_maps",
    "make_composite",
    "negative_intensity",
    "normalise_maps",
]
