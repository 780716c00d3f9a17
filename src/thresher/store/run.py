"""The run directory: everything one analysis produced, with no pickle anywhere.

Layout::

    RUN/manifest.json          schema version, package version, config, input hashes, steps
    RUN/*.parquet              tables (pyarrow)
    RUN/*.npy                  arrays (memory-mapped on read)
    RUN/*.safetensors          weights (``thresher.train.save_checkpoint``)
    RUN/*.json                 small results
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from thresher.errors import RunError
from thresher.store.atomic import atomic_open, atomic_path, atomic_write_text

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """Stable JSON (sorted keys) so that equal results give byte-identical files."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


class Run:
    """A run directory. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, path: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self._manifest = manifest

    # --- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        config: dict[str, Any],
        inputs: dict[str, str] | None = None,
        overwrite: bool = False,
    ) -> Run:
        """Start a run at ``path``; refuses to reuse a non-empty directory unless ``overwrite``."""
        from thresher import __version__

        root = Path(path)
        if root.exists() and not root.is_dir():
            raise RunError(f"{root} exists and is not a directory; choose another --out")
        if root.is_dir() and any(root.iterdir()) and not overwrite:
            raise RunError(f"{root} is not empty; choose a new --out directory or pass --overwrite")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "thresher_version": __version__,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "config": config,
            "inputs": dict(inputs or {}),
            "steps": {},
        }
        run = cls(root, manifest)
        run._write_manifest()
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        root = Path(path)
        mpath = root / MANIFEST
        if not mpath.is_file():
            raise RunError(
                f"{root} is not a Thresher run (no {MANIFEST}); create one with `thresher train`"
            )
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise RunError(f"{mpath} is unreadable or not JSON ({err}); recreate the run") from err
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        if version != SCHEMA_VERSION:
            raise RunError(
                f"{root} has run schema {version!r}, this Thresher reads {SCHEMA_VERSION}; "
                "recreate the run with this version"
            )
        return cls(root, manifest)

    # --- manifest --------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._manifest))  # a copy: callers cannot mutate ours

    @property
    def config(self) -> dict[str, Any]:
        return self.manifest["config"]

    # Every step record goes through these methods (no caller edits the manifest's dicts).
    def steps(self) -> list[str]:
        """The names of the recorded steps, sorted."""
        return sorted(self._manifest["steps"])

    def has_step(self, name: str) -> bool:
        return name in self._manifest["steps"]

    def step(self, name: str) -> dict[str, Any]:
        """A copy of step ``name``'s record (``{}`` when it has not run)."""
        return json.loads(json.dumps(self._manifest["steps"].get(name, {})))

    def require_step(self, name: str, *, command: str, what: str) -> None:
        """Refuse to go on unless step ``name`` ran: ``RunError`` naming ``command``."""
        if not self.has_step(name):
            raise RunError(f"{self.path} has no {what}; run `{command}` into it first")

    def record_step(self, name: str, info: dict[str, Any]) -> None:
        """Record that step ``name`` finished, with what it produced (replaces its record)."""
        self._manifest["steps"][name] = json.loads(dumps(info))
        self._write_manifest()

    def record_entries(self, name: str, entries: dict[str, Any]) -> None:
        """Add or replace entries of step ``name``'s record, keeping its other entries (steps
        recorded per key: embeddings per layer, filters per tag, analyses per name)."""
        record = self._manifest["steps"].setdefault(name, {})
        record.update(json.loads(dumps(entries)))
        self._write_manifest()

    def record_input(self, name: str, digest: str) -> None:
        self._manifest["inputs"][name] = digest
        self._write_manifest()

    def _write_manifest(self) -> None:
        atomic_write_text(self.path / MANIFEST, dumps(self._manifest))

    # --- files -----------------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        """Absolute path of ``rel`` inside the run; refuses paths that leave it."""
        p = (self.path / rel).resolve()
        if not p.is_relative_to(self.path.resolve()):
            raise RunError(f"{rel!r} leaves the run directory; use a relative path inside it")
        return p

    def exists(self, rel: str) -> bool:
        return self.file(rel).exists()

    def _need(self, rel: str) -> Path:
        p = self.file(rel)
        if not p.exists():
            raise RunError(f"{self.path} has no {rel}; run the step that makes it first")
        return p

    def write_json(self, rel: str, obj: Any) -> Path:
        p = self.file(rel)
        atomic_write_text(p, dumps(obj))
        return p

    def read_json(self, rel: str) -> Any:
        return json.loads(self._need(rel).read_text(encoding="utf-8"))

    def write_array(self, rel: str, array: np.ndarray) -> Path:
        p = self.file(rel)
        with atomic_open(p, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
        return p

    def read_array(self, rel: str, *, mmap: bool = True) -> np.ndarray:
        """Load ``rel``; memory-mapped by default so large embeddings are not copied into RAM."""
        return np.load(self._need(rel), mmap_mode="r" if mmap else None, allow_pickle=False)

    def write_table(self, rel: str, table: Any) -> Path:
        """Write a ``pyarrow.Table`` or a mapping of equal-length columns as Parquet."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not isinstance(table, pa.Table):
            table = pa.table({k: np.asarray(v) for k, v in dict(table).items()})
        p = self.file(rel)
        with atomic_path(p) as tmp:
            pq.write_table(table, tmp)
        return p

    def read_table(self, rel: str) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(self._need(rel))
