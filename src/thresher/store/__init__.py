"""Run directories and atomic writes."""

from thresher.store.atomic import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text
from thresher.store.ids import ID_FORMATS, read_ids, write_ids
from thresher.store.run import SCHEMA_VERSION, Run, dumps

__all__ = [
    "ID_FORMATS",
    "SCHEMA_VERSION",
    "Run",
    "atomic_open",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps",
    "read_ids",
    "write_ids",
]
