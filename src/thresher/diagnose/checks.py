"""Input checks shared by the diagnostics: one clear error per kind of bad input."""

from __future__ import annotations

import numpy as np

from thresher.errors import ConfigError, DataError


def check_values(values: np.ndarray, *, what: str = "embeddings") -> np.ndarray:
    """``(N, D)`` finite float32 (a copy only when the dtype or layout must change)."""
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(
            f"{what} must be a non-empty (N, D) array, got shape {arr.shape}; "
            "pass one feature vector per row"
        )
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{what} must be numeric, got {arr.dtype}; pass float feature vectors")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"{what} row {bad} holds NaN or infinity ({int((~finite).sum())} bad rows); "
            "check the model's weights or drop those items"
        )
    return arr


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
