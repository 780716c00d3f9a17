"""Checks of what users pass in (embeddings, ids, labels, fractions, k, classes), shared by
every domain package: one clear error per kind of bad input, naming the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.errors import ConfigError, DataError


def check_embeddings(
    values: Any, *, ids: np.ndarray | None = None, what: str = "embeddings"
) -> np.ndarray:
    """``(N, D)`` finite float32 with ``N, D >= 1`` (a copy only when the dtype or layout must
    change). The first bad row is named by its id when ``ids`` are given."""
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(
            f"{what} must be a non-empty 2-D (N, D) array, got shape {arr.shape}; "
            "flatten each sample's features into one row"
        )
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{what} must be real numbers, got dtype {arr.dtype}; cast to float32")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        where = f"of id {str(ids[row])!r}" if ids is not None else f"at row {row}"
        raise DataError(
            f"the embedding {where} contains NaN or inf ({int((~finite).sum())} bad rows in all); "
            "re-extract the embeddings (check the model's weights) or drop those rows"
        )
    return arr


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


def unpack(
    embeddings_or_x: Any,
    *,
    ids: Any = None,
    labels: Any = None,
    predictions: Any = None,
    min_items: int = 2,
    what: str = "filtering",
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
            f"got {n} item(s); {what} needs at least {min_items} — pass the whole data set"
        )
    if shape[1] < 1:
        raise DataError("embeddings have 0 features per row; extract a layer with outputs")
    id_arr = as_ids(ids, n)
    return FilterInput(
        values=check_embeddings(values, ids=id_arr),
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


def check_labels(
    labels: np.ndarray | None, *, n: int, num_classes: int | None = None, what: str = "labels"
) -> np.ndarray:
    """``(n,)`` int64 labels in ``[0, num_classes)``; ``None`` is refused (this needs labels)."""
    if labels is None:
        raise DataError(
            f"this analysis needs {what} but the data are unlabelled; "
            "use a labelled data set (or pseudo-labels from a model)"
        )
    arr = np.asarray(labels)
    if arr.shape != (n,):
        raise DataError(
            f"{what} have shape {arr.shape} but there are {n} items; give one label per item"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{what} must be integers, got {arr.dtype}; pass class indices")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise DataError(f"{what} contain a negative class index; pass indices from 0")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise DataError(
            f"{what} contain class {int(arr.max())} but only {num_classes} classes are named; "
            "pass the full class list"
        )
    return arr


def resolve_classes(
    labels: np.ndarray, classes: tuple[str, ...] | list[str] | None
) -> tuple[str, ...]:
    """The class names, or ``("0", "1", ...)`` up to the largest label."""
    if classes:
        return tuple(str(c) for c in classes)
    return tuple(str(i) for i in range(int(labels.max()) + 1 if labels.size else 0))


def check_several_classes(labels: np.ndarray, *, what: str = "this analysis") -> None:
    present = np.unique(labels)
    if present.size < 2:
        only = int(present[0]) if present.size else None
        raise DataError(
            f"{what} compares classes but the data hold a single class ({only}); "
            "use data with at least two classes"
        )


def check_k(k: int, *, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def check_class_sizes(labels: np.ndarray, classes: tuple[str, ...], *, k: int) -> None:
    """Every present class needs ``k + 1`` items so that its items can have ``k`` neighbours
    of their own class."""
    counts = np.bincount(labels, minlength=len(classes))
    small = [c for c in range(len(classes)) if 0 < counts[c] < k + 1]
    if small:
        c = small[0]
        raise DataError(
            f"class {classes[c]!r} has {int(counts[c])} items, fewer than k + 1 = {k + 1}; "
            f"lower --k to at most {int(counts[c]) - 1} or add items to that class"
        )


def check_reference(reference: int | str, classes: tuple[str, ...]) -> int:
    """A reference class given by index or name, as an index."""
    if isinstance(reference, str) and not reference.lstrip("-").isdigit():
        if reference not in classes:
            raise ConfigError(
                f"unknown reference class {reference!r}; use one of {', '.join(classes)}"
            )
        return classes.index(reference)
    idx = int(reference)
    if not 0 <= idx < len(classes):
        raise ConfigError(
            f"reference class {idx} is out of range; use 0..{len(classes) - 1} or a class name"
        )
    return idx
