"""The ``export`` step: write the kept set of a run's filter (ids, a folder, an index)."""

from __future__ import annotations

import os
from typing import Any, Literal

from thresher.errors import ConfigError
from thresher.store import Run, write_ids
from thresher.workflows.filter import load_filter
from thresher.workflows.run import run_dataset

EXPORT_FORMATS = ("txt", "csv", "json", "parquet", "folder", "index")


def export_run(
    run: Run,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    tag: str | None = None,
) -> dict[str, Any]:
    """Export the kept ids of a stored filter: an id list, an image folder, or an index."""
    from thresher.store.materialise import materialise

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    result = load_filter(run, tag)
    kept = result.kept_ids
    if fmt in ("txt", "csv", "json", "parquet"):
        columns = None
        if fmt in ("csv", "parquet"):
            sel = result.kept
            columns = {"score": result.score[sel].tolist()}
        path = write_ids(kept, out, fmt=fmt, columns=columns)
        return {"path": str(path), "format": fmt, "count": len(kept)}
    ds = run_dataset(run, "train")
    mode: Literal["copy", "index"] = "copy" if fmt == "folder" else "index"
    report = materialise(ds, kept, out, mode=mode)
    return {"path": report.path, "format": fmt, "count": report.count}
