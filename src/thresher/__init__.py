"""Thresher: see an image-classification dataset through the eyes of its model."""

from thresher.errors import ThresherError

__version__ = "0.1.0"

__all__ = ["ThresherError", "__version__"]
