"""Feature embeddings: list layers, tap them with hooks, extract a data set, cache the result."""

from thresher.embed.cache import cache_key, cached_extract, entry_dir, load_embeddings
from thresher.embed.extract import Embeddings, extract
from thresher.embed.tap import POOLINGS, LayerTap
from thresher.models.fingerprint import model_fingerprint
from thresher.models.layers import LayerInfo, default_layer, list_layers, resolve_layer

__all__ = [
    "POOLINGS",
    "Embeddings",
    "LayerInfo",
    "LayerTap",
    "cache_key",
    "cached_extract",
    "default_layer",
    "entry_dir",
    "extract",
    "list_layers",
    "load_embeddings",
    "model_fingerprint",
    "resolve_layer",
]
