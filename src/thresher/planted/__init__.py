"""Planted corruptions: a data set with known junk, and the scores of a detector on it."""

from thresher.planted.corruptions import (
    BROKEN_KINDS,
    COPY_KINDS,
    DEFAULT_SHARES,
    FAMILY,
    KINDS,
    LABEL_KINDS,
    PlantRecord,
    plant,
)
from thresher.planted.scoring import KindScore, score_flagged, score_ranking

__all__ = [
    "BROKEN_KINDS",
    "COPY_KINDS",
    "DEFAULT_SHARES",
    "FAMILY",
    "KINDS",
    "LABEL_KINDS",
    "KindScore",
    "PlantRecord",
    "plant",
    "score_flagged",
    "score_ranking",
]
