"""The ``export`` step: write the kept set of a run's filter (ids, a folder, an index)."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

from thresher.errors import ConfigError
from thresher.store import Run, write_ids
from thresher.workflows.filter import load_filter
from thresher.workflows.run import run_dataset

EXPORT_FORMATS = ("txt", "csv", "json", "parquet", "folder", "index", "yolo", "coco")
DETECTION_FORMATS = ("yolo", "coco")  # the kept images with their boxes


def export_run(
    run: Run,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    tag: str | None = None,
    apply_tags: bool = True,
) -> dict[str, Any]:
    """Export the kept ids of a stored filter: an id list, an image folder, or an index; for a
    detection run a YOLO or COCO folder of the kept images with their boxes (PNG at the size
    the run stores).

    With ``apply_tags`` (the default) the user's verdicts (``thresher tag``, the app) are
    applied: images tagged ``remove`` leave the kept set, images tagged ``keep`` join it. The
    answer says how many images the tags moved (``tags``).
    """
    from thresher.store.materialise import materialise
    from thresher.workflows.curation import apply_verdicts, load_tags

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    from thresher.workflows.evaluate_detection import is_detection_run

    detection = is_detection_run(run)
    if fmt in DETECTION_FORMATS and not detection:
        raise ConfigError(
            f"--format {fmt} writes boxes, but {run.path} is a classification run; use folder"
        )
    if detection and fmt in ("folder", "index"):
        raise ConfigError(
            f"--format {fmt} would drop the boxes of this detection run; use yolo or coco"
        )
    result = load_filter(run, tag)
    sel = np.asarray(result.kept, bool)
    moved = {"removed_by_tag": 0, "kept_by_tag": 0}
    if apply_tags:
        tags = load_tags(run)
        if tags:
            sel, removed, restored = apply_verdicts(result.ids, sel, tags)
            moved = {"removed_by_tag": removed, "kept_by_tag": restored}
    kept = np.asarray(result.ids)[sel]
    if fmt in ("txt", "csv", "json", "parquet"):
        columns = None
        if fmt in ("csv", "parquet"):
            columns = {"score": np.asarray(result.score)[sel].tolist()}
        path = write_ids(kept, out, fmt=fmt, columns=columns)
        return {"path": str(path), "format": fmt, "count": len(kept), "tags": moved}
    ds = run_dataset(run, "train")
    if fmt in DETECTION_FORMATS:
        from thresher.data.detection import DetectionDataset
        from thresher.data.detection_io import write_coco, write_yolo

        kept_set = ds.subset(kept)
        assert isinstance(kept_set, DetectionDataset)  # a detection run's data (checked above)
        writer = write_yolo if fmt == "yolo" else write_coco
        path = writer(kept_set, out, split="train")  # refuses an existing split
        return {"path": str(path), "format": fmt, "count": len(kept), "tags": moved}
    mode: Literal["copy", "index"] = "copy" if fmt == "folder" else "index"
    report = materialise(ds, kept, out, mode=mode)
    return {"path": report.path, "format": fmt, "count": report.count, "tags": moved}
