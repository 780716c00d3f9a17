"""Run directories and atomic writes."""

from thresher.store.atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
from thresher.store.run import SCHEMA_VERSION, Run, dumps

__all__ = [
    "SCHEMA_VERSION",
    "Run",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps",
]
