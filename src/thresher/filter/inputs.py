"""Turn what the user passed (an ``Embeddings`` or plain arrays) into checked arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.errors import ConfigError, DataError


@dataclass(frozen=True)
class FilterInput:
    """Checked inputs: ``values (N, D)`` finite float32, unique ``ids (N,)`` str, optional
    ``labels``/``predictions (N,)``."""

    values: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    predictions: np.ndarray | None

    def __len__(self) -> int:
        return int(self.values.shape[0])


def as_ids(ids: Any, n: int) -> np.ndarray:
    """``(n,)`` str ids; ``None`` gives ``"0" .. "n-1"``. Refuses duplicates and bad lengths."""
    if ids is None:
        return np.arange(n).astype(str)
    out = np.asarray(ids)
    if out.ndim != 1 or out.shape[0] != n:
        raise DataError(
            f"got {n} embeddings but ids has shape {out.shape}; give one id per embedding row"
        )
    out = out.astype(str)
    uniq, first, counts = np.unique(out, return_index=True, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        # Name the duplicate that occurs first in the user's order.
        bad = str(dup[np.argmin(first[counts > 1])])
        raise DataError(
            f"id {bad!r} occurs {int(counts[uniq == bad][0])} times "
            f"({int((counts > 1).sum())} duplicated ids in all); ids must be unique"
        )
    return out


def as_per_sample(values: Any, n: int, *, what: str) -> np.ndarray | None:
    if values is None:
        return None
    out = np.asarray(values)
    if out.ndim != 1 or out.shape[0] != n:
        raise DataError(
            f"got {n} embeddings but {what} has shape {out.shape}; give one entry per row"
        )
    return out


def as_matrix(x: Any, ids: np.ndarray | None = None) -> np.ndarray:
    """``(N, D)`` float32 with every value finite (the first bad row is named)."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(
            f"embeddings must be a 2-D (N, D) array, got shape {arr.shape}; "
            "flatten each sample's features into one row"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"embeddings must be real numbers, got dtype {arr.dtype}; cast to float32")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        name = repr(str(ids[row])) if ids is not None else f"at row {row}"
        raise DataError(
            f"embedding of id {name} contains NaN or inf ({int((~finite).sum())} bad rows in "
            "all); re-extract the embeddings or drop those rows"
        )
    return arr


def unpack(
    embeddings_or_x: Any,
    *,
    ids: Any = None,
    labels: Any = None,
    predictions: Any = None,
    min_items: int = 2,
) -> FilterInput:
    """Accept an ``Embeddings`` (duck-typed: ``values`` and ``ids``) or an ``(N, D)`` array.

    Arguments given explicitly win over the ``Embeddings``'s own ids/labels/predictions.
    """
    if hasattr(embeddings_or_x, "values") and hasattr(embeddings_or_x, "ids"):
        values = embeddings_or_x.values
        ids = embeddings_or_x.ids if ids is None else ids
        labels = getattr(embeddings_or_x, "labels", None) if labels is None else labels
        if predictions is None:
            predictions = getattr(embeddings_or_x, "predictions", None)
    else:
        values = embeddings_or_x
    shape = np.shape(values)
    if len(shape) != 2:
        raise DataError(
            f"embeddings must be a 2-D (N, D) array, got shape {tuple(shape)}; "
            "flatten each sample's features into one row"
        )
    n = int(shape[0])
    if n < min_items:
        raise DataError(
            f"got {n} item(s); filtering needs at least {min_items} — pass the whole data set"
        )
    if shape[1] < 1:
        raise DataError("embeddings have 0 features per row; extract a layer with outputs")
    id_arr = as_ids(ids, n)
    return FilterInput(
        values=as_matrix(values, id_arr),
        ids=id_arr,
        labels=as_per_sample(labels, n, what="labels"),
        predictions=as_per_sample(predictions, n, what="predictions"),
    )


def check_fraction(value: float, *, name: str, upper_inclusive: bool = False) -> float:
    """A fraction in ``[0, 1)`` (or ``[0, 1]``); a percentage like 5 gets a hint."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}") from None
    top_ok = v <= 1.0 if upper_inclusive else v < 1.0
    if not (np.isfinite(v) and v >= 0.0 and top_ok):
        hint = f"; for {v:g}% pass {v / 100:g}" if 1.0 <= v <= 100.0 else ""
        bound = "]" if upper_inclusive else ")"
        raise ConfigError(f"{name} must be a fraction in [0, 1{bound}, got {v:g}{hint}")
    return v
