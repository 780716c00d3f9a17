"""Data sources: every sample has a stable id; the user's files are never modified."""

from thresher.data.types import ImageDataset

__all__ = ["ImageDataset"]
