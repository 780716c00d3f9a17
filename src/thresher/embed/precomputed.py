"""Read embeddings computed elsewhere (CLIP, DINOv2, a production model) and their ids/labels.

Embeddings: ``.npy`` (an ``(N, D)`` array, read memory-mapped) or ``.parquet`` (one list
column, or every numeric column but ``id``/``label``). Ids and labels: ``.npy``, ``.txt`` (one
per line), ``.csv`` (the ``id``/``label`` column, else the first), or ``.parquet`` (the named
column, else the only one); a Parquet embeddings file may carry its own ``id``/``label``
columns. Every reader names the file and the fix when a file does not fit.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from thresher.errors import DataError

EMBEDDING_SUFFIXES = (".npy", ".parquet")
COLUMN_SUFFIXES = (".npy", ".txt", ".csv", ".parquet")
ID_COLUMN = "id"
LABEL_COLUMN = "label"
LIST_COLUMNS = ("embedding", "embeddings", "values", "vector", "features")


def _existing(path: str | os.PathLike[str], what: str, suffixes: tuple[str, ...]) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{what} file {p} does not exist; check the path")
    if p.suffix.lower() not in suffixes:
        raise DataError(
            f"{what} file {p} has suffix {p.suffix or '(none)'!r}; use one of {', '.join(suffixes)}"
        )
    return p


def read_embeddings_file(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """``(values (N, D), extra columns)``; ``extra`` holds a Parquet file's ``id``/``label``.

    ``.npy`` values are memory-mapped (a 10 GB file is not read into memory here)."""
    p = _existing(path, "embeddings", EMBEDDING_SUFFIXES)
    if p.suffix.lower() == ".npy":
        try:
            values = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as err:
            raise DataError(
                f"{p} is not a plain numeric .npy array ({err}); save it with "
                "numpy.save(path, array.astype('float32'))"
            ) from err
        return values, {}
    table = _read_parquet(p, "embeddings")
    extra = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in (ID_COLUMN, LABEL_COLUMN)
        if name in table.column_names
    }
    rest = [n for n in table.column_names if n not in (ID_COLUMN, LABEL_COLUMN)]
    import pyarrow as pa

    lists = [n for n in rest if pa.types.is_list(table.schema.field(n).type)
             or pa.types.is_fixed_size_list(table.schema.field(n).type)]  # fmt: skip
    if lists:
        named = [n for n in lists if n in LIST_COLUMNS]
        if len(lists) > 1 and not named:
            raise DataError(
                f"{p} has several list columns ({', '.join(lists)}); name the embedding column "
                f"one of {', '.join(LIST_COLUMNS)}"
            )
        column = table.column(named[0] if named else lists[0]).combine_chunks()
        lengths = set(column.value_lengths().to_numpy(zero_copy_only=False).tolist())
        if len(lengths) != 1:
            raise DataError(
                f"{p}: the embedding rows have different lengths ({sorted(lengths)[:5]}); "
                "every row needs the same dimension"
            )
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat).reshape(len(column), lengths.pop()), extra
    numeric = [n for n in rest if pa.types.is_integer(table.schema.field(n).type)
               or pa.types.is_floating(table.schema.field(n).type)]  # fmt: skip
    if not numeric:
        raise DataError(
            f"{p} has no embedding columns (neither a list column nor numeric columns besides "
            "id and label); write one list<float> column named 'embedding'"
        )
    return np.column_stack([table.column(n).to_numpy() for n in numeric]), extra


def read_column_file(path: str | os.PathLike[str], *, what: str, column: str) -> np.ndarray:
    """One value per line/row: ``(N,)`` from ``.npy``, ``.txt``, ``.csv`` or ``.parquet``."""
    p = _existing(path, what, COLUMN_SUFFIXES)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as err:
            raise DataError(f"{p} is not a plain .npy array of {what} ({err})") from err
    elif suffix == ".txt":
        lines = p.read_text(encoding="utf-8").splitlines()
        while lines and not lines[-1].strip():  # a trailing newline is not an entry
            lines.pop()
        arr = np.asarray([line.strip() for line in lines])
    elif suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise DataError(f"{what} file {p} is empty")
        header = [h.strip() for h in rows[0]]
        index = header.index(column) if column in header else 0
        body = rows[1:] if column in header else rows
        arr = np.asarray([row[index].strip() if len(row) > index else "" for row in body])
    else:
        table = _read_parquet(p, what)
        if column in table.column_names:
            name = column
        elif len(table.column_names) == 1:
            name = table.column_names[0]
        else:
            raise DataError(
                f"{p} has columns {', '.join(table.column_names)}; name the {what} column "
                f"{column!r} or keep only that one"
            )
        arr = table.column(name).to_numpy(zero_copy_only=False)
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise DataError(f"{what} in {p} must be one value per row, got shape {arr.shape}")
    return arr


def labels_to_indices(
    raw: np.ndarray, *, classes: tuple[str, ...] | None = None, what: str = "labels"
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(labels (N,) int64, class names)`` from integer indices or class names.

    Integers (or strings of digits) are indices: the names are ``classes`` or ``"0".."K-1"``.
    Other strings are names: the classes are ``classes`` (every name must be in it) or the
    sorted distinct names."""
    arr = np.asarray(raw)
    if arr.size == 0:
        raise DataError(f"{what} are empty; give one label per embedding row")
    if arr.dtype.kind in "iu" or (arr.dtype.kind in "US" and all(str(v).isdigit() for v in arr)):
        idx = arr.astype(np.int64)
        if idx.min() < 0:
            raise DataError(f"{what} contain a negative class index; pass indices from 0")
        names = classes or tuple(str(i) for i in range(int(idx.max()) + 1))
        if idx.max() >= len(names):
            raise DataError(
                f"{what} contain class {int(idx.max())} but only {len(names)} classes are "
                "named; pass the full class list"
            )
        return idx, tuple(names)
    if arr.dtype.kind == "f":
        raise DataError(f"{what} are floats ({arr.dtype}); pass class indices or class names")
    text = arr.astype(str)
    if any(not t for t in text):
        row = int(np.flatnonzero(text == "")[0])
        raise DataError(f"{what} row {row} is empty; every sample needs a class")
    names = tuple(classes) if classes else tuple(sorted(set(text.tolist())))
    position = {name: k for k, name in enumerate(names)}
    unknown = [t for t in text if t not in position]
    if unknown:
        raise DataError(
            f"{what} name class {unknown[0]!r}, which is not among {', '.join(names[:10])}; "
            "fix the label or the class list"
        )
    return np.asarray([position[t] for t in text], dtype=np.int64), names


def _read_parquet(p: Path, what: str) -> Any:
    import pyarrow.lib
    import pyarrow.parquet as pq

    try:
        return pq.read_table(p)
    except (OSError, pyarrow.lib.ArrowException) as err:
        raise DataError(f"{what} file {p} is not a readable Parquet file ({err})") from err
