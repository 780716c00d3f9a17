"""Lists of sample ids on disk (txt / csv / json / parquet): subsets in, kept lists out."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thresher.errors import DataError
from thresher.store.atomic import atomic_path, atomic_write_text

ID_FORMATS = ("txt", "csv", "json", "parquet")


def _format_of(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lstrip(".").lower() or "txt"
    if fmt not in ID_FORMATS:
        raise DataError(
            f"{path}: unknown id-list format {fmt!r}; use one of {', '.join(ID_FORMATS)}"
        )
    return fmt


def read_ids(path: str | os.PathLike[str], *, fmt: str | None = None) -> np.ndarray:
    """Read a list of sample ids.

    txt: one id per line (blank lines and ``#`` comments ignored); csv: an ``id`` column;
    json: a list, or an object with an ``ids`` list; parquet: an ``id`` column.

    Returns:
        ``(N,)`` array of str, in file order; duplicates are refused.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"subset file {p} does not exist; give a txt/csv/json/parquet list of ids")
    kind = _format_of(p, fmt)
    try:
        if kind == "txt":
            lines = p.read_text(encoding="utf-8").splitlines()
            ids = [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]
        elif kind == "csv":
            rows = list(csv.DictReader(io.StringIO(p.read_text(encoding="utf-8"))))
            if rows and "id" not in rows[0]:
                raise DataError(f"{p}: no 'id' column (columns: {', '.join(rows[0])})")
            ids = [r["id"] for r in rows]
        elif kind == "json":
            obj = json.loads(p.read_text(encoding="utf-8"))
            listed = obj.get("ids") if isinstance(obj, dict) else obj
            if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
                raise DataError(f"{p}: expected a JSON list of id strings or {{'ids': [...]}}")
            ids = listed
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(p)
            if "id" not in table.column_names:
                raise DataError(f"{p}: no 'id' column (columns: {', '.join(table.column_names)})")
            ids = [str(i) for i in table.column("id").to_pylist()]
    except (UnicodeDecodeError, ValueError, OSError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{p} is not a readable {kind} id list ({err}); check the file") from err
    arr = np.asarray(ids, dtype=str)
    if arr.size == 0:
        raise DataError(f"{p} lists no ids; a subset needs at least one sample")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{p}: id {uniq[counts > 1][0]!r} is listed twice; list each sample once")
    return arr


def write_ids(
    ids: Sequence[str] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    columns: dict[str, Sequence[object]] | None = None,
) -> Path:
    """Write ``ids`` (plus optional extra columns for csv/parquet) atomically."""
    p = Path(path)
    kind = _format_of(p, fmt)
    ids = [str(i) for i in ids]
    extra = {k: list(v) for k, v in (columns or {}).items()}
    for k, v in extra.items():
        if len(v) != len(ids):
            raise DataError(f"column {k!r} has {len(v)} values for {len(ids)} ids")
    if kind == "txt":
        atomic_write_text(p, "".join(f"{i}\n" for i in ids))
    elif kind == "json":
        atomic_write_text(p, json.dumps({"ids": ids}, indent=1) + "\n")
    elif kind == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["id", *extra])
        writer.writerows(zip(ids, *extra.values(), strict=True))
        atomic_write_text(p, buf.getvalue())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(p) as tmp:
            pq.write_table(pa.table({"id": ids, **extra}), tmp)
    return p
