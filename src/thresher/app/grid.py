"""The sample grid's table: one row per image of a split, every column the grid filters or
sorts on, as numpy arrays (a query over 10^5 rows is a few boolean masks and one argsort).

Nothing here imports a web framework or reads files; :class:`thresher.app.state.RunState`
builds a :class:`GridFrame` from the run and :func:`query` answers the grid's requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: columns the grid sorts on; ``index`` is the split's own order
SORT_KEYS = ("index", "score", "outlier_score", "label_score", "same_class_neighbours", "id")
REASONS = ("kept", "outlier", "similar", "label", "other")
PAGE_MAX = 500


@dataclass(frozen=True)
class GridFrame:
    """One row per image of a split (``N`` rows).

    Attributes:
        ids: ``(N,)`` str.
        labels, predictions: ``(N,)`` int, -1 where unknown.
        reason: ``(N,)`` str (``kept``, ``outlier``, ``similar``, ``label``, ``other``), "" with
            no filter result.
        score, outlier_score, label_score: ``(N,)`` float, NaN where unknown.
        archetype: ``(N,)`` str, "" where unknown; same_class_neighbours ``(N,)`` int, -1.
        filter_tag: the filter result joined in, or None.
    """

    ids: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    reason: np.ndarray
    score: np.ndarray
    outlier_score: np.ndarray
    label_score: np.ndarray
    is_label_issue: np.ndarray
    archetype: np.ndarray
    same_class_neighbours: np.ndarray
    filter_tag: str | None

    def __len__(self) -> int:
        return len(self.ids)


def empty_frame(ids: np.ndarray, labels: np.ndarray | None) -> dict[str, Any]:
    """The columns of a frame with nothing but ids and labels known (for :func:`join`)."""
    n = len(ids)
    return {
        "ids": np.asarray(ids).astype(str),
        "labels": np.full(n, -1, np.int64) if labels is None else np.asarray(labels, np.int64),
        "predictions": np.full(n, -1, np.int64),
        "reason": np.full(n, "", dtype=object),
        "score": np.full(n, np.nan),
        "outlier_score": np.full(n, np.nan),
        "label_score": np.full(n, np.nan),
        "is_label_issue": np.zeros(n, bool),
        "archetype": np.full(n, "", dtype=object),
        "same_class_neighbours": np.full(n, -1, np.int64),
        "filter_tag": None,
    }


def join(columns: dict[str, Any], ids: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
    """Copy ``values`` (each ``(M,)``, row ``j`` belonging to ``ids[j]``) into ``columns`` by id;
    ids the frame does not hold are ignored, rows without a match keep their default."""
    position = {s: i for i, s in enumerate(columns["ids"].tolist())}
    src = np.array([position.get(str(s), -1) for s in np.asarray(ids).tolist()], np.int64)
    ok = src >= 0
    for name, vals in values.items():
        columns[name][src[ok]] = np.asarray(vals)[ok]


def query(
    frame: GridFrame,
    *,
    tags: Mapping[str, tuple[str, ...]],
    label: int | None = None,
    reason: str | None = None,
    archetype: str | None = None,
    tag: str | None = None,
    search: str | None = None,
    score_key: str = "score",
    min_score: float | None = None,
    max_score: float | None = None,
    sort: str = "index",
    descending: bool = False,
) -> np.ndarray:
    """Rows of ``frame`` that pass every given filter, in the asked order.

    ``tag`` is a user tag, or ``"untagged"``; ``search`` a case-insensitive piece of the id;
    the score range applies to ``score_key`` (rows where it is unknown are left out). Ties and
    unknown values sort by the split's order, unknown values last in either direction.
    """
    n = len(frame)
    mask = np.ones(n, bool)
    if label is not None:
        mask &= frame.labels == label
    if reason:
        mask &= frame.reason == reason
    if archetype:
        mask &= frame.archetype == archetype
    if tag:
        if tag == "untagged":
            mask &= ~np.isin(frame.ids, list(tags))
        else:
            mask &= np.isin(frame.ids, [i for i, t in tags.items() if tag in t])
    if search:
        lowered = np.char.lower(frame.ids.astype(str))
        mask &= np.char.find(lowered, search.lower()) >= 0
    if min_score is not None or max_score is not None:
        values = _numeric(frame, score_key)
        known = np.isfinite(values)
        mask &= known
        if min_score is not None:
            mask &= np.where(known, values, -np.inf) >= min_score
        if max_score is not None:
            mask &= np.where(known, values, np.inf) <= max_score
    rows = np.flatnonzero(mask)
    if sort == "index":
        return rows[::-1] if descending else rows
    if sort == "id":
        order = np.argsort(frame.ids[rows].astype(str), kind="stable")
        return rows[order[::-1]] if descending else rows[order]
    values = _numeric(frame, sort)[rows]
    known = np.isfinite(values)
    key = np.where(known, -values if descending else values, np.inf)
    return rows[np.argsort(key, kind="stable")]


def _numeric(frame: GridFrame, key: str) -> np.ndarray:
    if key == "same_class_neighbours":
        values = frame.same_class_neighbours.astype(np.float64)
        return np.where(values < 0, np.nan, values)
    if key not in ("score", "outlier_score", "label_score"):
        raise ValueError(f"cannot sort or filter on {key!r}; use one of {', '.join(SORT_KEYS)}")
    return np.asarray(getattr(frame, key), np.float64)


def row_dict(
    frame: GridFrame, row: int, tags: Mapping[str, tuple[str, ...]], classes: list[str]
) -> dict[str, Any]:
    """One grid row as JSON (NaN and -1 become None)."""

    def name(c: int) -> str | None:
        return classes[c] if 0 <= c < len(classes) else None

    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    sid = str(frame.ids[row])
    label, pred = int(frame.labels[row]), int(frame.predictions[row])
    same = int(frame.same_class_neighbours[row])
    return {
        "index": int(row),
        "id": sid,
        "label": None if label < 0 else label,
        "class": name(label),
        "prediction_class": name(pred),
        "reason": str(frame.reason[row]) or None,
        "score": num(frame.score[row]),
        "outlier_score": num(frame.outlier_score[row]),
        "label_score": num(frame.label_score[row]),
        "is_label_issue": bool(frame.is_label_issue[row]),
        "archetype": str(frame.archetype[row]) or None,
        "same_class_neighbours": None if same < 0 else same,
        "tags": list(tags.get(sid, ())),
    }
