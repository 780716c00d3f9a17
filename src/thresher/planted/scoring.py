"""Score a detector against planted corruptions: recall at a budget and average precision.

Each corruption kind is scored on its own, among the clean rows and that kind's rows only (other
planted kinds are left out, so a filter that rightly ranks a blank image above a foreign one is
not punished when foreign images are scored).

Copies are scored as pairs: a planted copy counts as found when the copy *or* the image it
copies is flagged (removing either leaves one of the two). For rankings, each pair is one unit
scored by the higher of its two rows. The source rows of every planted copy leave the clean
pool of every kind (their own scores carry the copy's presence).

* ``recall_at_planted`` — flag as many units as there are planted ones: recall equals
  precision there.
* ``recall_at_budget`` — flag ``ceil(budget x units)`` units (default 2%, the issue's bar).
* ``average_precision`` — scikit-learn's AP of the whole ranking.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from thresher.errors import ConfigError
from thresher.planted.corruptions import COPY_KINDS, FAMILY, PlantRecord


@dataclass(frozen=True)
class KindScore:
    """How well one ranking finds one corruption kind.

    Attributes:
        kind: the corruption kind.
        n_planted: planted rows (pairs for copies).
        n_units: the pool the ranking was scored on (clean + planted units).
        recall_at_planted: recall when flagging ``n_planted`` units (= precision there).
        budget: the share of ``recall_at_budget``.
        recall_at_budget: recall when flagging ``ceil(budget x n_units)`` units.
        precision_at_budget: precision there.
        average_precision: AP of the ranking (NaN when nothing was planted).
    """

    kind: str
    n_planted: int
    n_units: int
    recall_at_planted: float
    budget: float
    recall_at_budget: float
    precision_at_budget: float
    average_precision: float

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _units(
    scores: np.ndarray, record: PlantRecord, kind: str, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(unit scores, unit is planted) over the clean rows and ``kind``'s rows."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != record.kind.shape:
        raise ConfigError(
            f"scores have shape {scores.shape} but the planted record has {record.kind.shape[0]} rows"
        )
    planted = record.kind == kind
    row_of = {str(i): r for r, i in enumerate(ids)}
    # Clean rows that some planted copy duplicates are not clean for any kind: their scores
    # carry the copy's presence (an exact copy's source looks like a duplicate too).
    copied = np.isin(record.kind, COPY_KINDS)
    sources = np.array([row_of[s] for s in record.source_id[copied]], dtype=np.int64)
    clean = record.kind == "clean"
    clean[sources] = False
    if kind not in COPY_KINDS:
        pool = clean | planted
        return scores[pool], planted[pool]
    src = np.array([row_of[s] for s in record.source_id[planted]], dtype=np.int64)
    pair_score = np.maximum(scores[planted], scores[src])
    pool = clean
    return (
        np.concatenate([scores[pool], pair_score]),
        np.concatenate([np.zeros(int(pool.sum()), bool), np.ones(src.shape[0], bool)]),
    )


def _recall_top(unit_scores: np.ndarray, positive: np.ndarray, count: int) -> tuple[float, float]:
    if count <= 0 or not positive.any():
        return float("nan"), float("nan")
    # Ties go against the planted units: a constant score finds nothing by luck.
    order = np.lexsort((positive, -unit_scores))
    hits = int(positive[order[:count]].sum())
    return hits / int(positive.sum()), hits / count


def score_ranking(
    scores: np.ndarray,
    record: PlantRecord,
    kind: str,
    *,
    ids: np.ndarray,
    budget: float = 0.02,
) -> KindScore:
    """Score ``scores`` ``(N,)`` (higher = more suspect) on planted ``kind``.

    ``ids`` ``(N,)`` are the planted set's ids (copies name their source by id).
    """
    from sklearn.metrics import average_precision_score

    if kind not in FAMILY:
        raise ConfigError(f"unknown corruption kind {kind!r}")
    unit_scores, positive = _units(scores, record, kind, np.asarray(ids))
    n_pos = int(positive.sum())
    n = int(positive.shape[0])
    at_planted, _ = _recall_top(unit_scores, positive, n_pos)
    at_budget, prec = _recall_top(unit_scores, positive, math.ceil(budget * n))
    ap = float(average_precision_score(positive, unit_scores)) if n_pos else float("nan")
    return KindScore(
        kind=kind,
        n_planted=n_pos,
        n_units=n,
        recall_at_planted=at_planted,
        budget=budget,
        recall_at_budget=at_budget,
        precision_at_budget=prec,
        average_precision=ap,
    )


def score_flagged(
    flagged: np.ndarray, record: PlantRecord, kind: str, *, ids: np.ndarray
) -> dict[str, float | int | str]:
    """Recall and precision of a flagged set ``(N,)`` bool on ``kind`` (pairs for copies),
    counting only flags among the clean rows and ``kind``'s rows."""
    flagged = np.asarray(flagged, dtype=bool)
    unit_flag, positive = _units(flagged.astype(np.float64), record, kind, np.asarray(ids))
    hit = unit_flag > 0
    n_pos = int(positive.sum())
    n_flag = int(hit.sum())
    found = int((hit & positive).sum())
    return {
        "kind": kind,
        "n_planted": n_pos,
        "n_flagged": n_flag,
        "recall": found / n_pos if n_pos else float("nan"),
        "precision": found / n_flag if n_flag else float("nan"),
    }


__all__ = ["KindScore", "score_flagged", "score_ranking"]
