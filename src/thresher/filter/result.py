"""One result type for every filter (cleanlab-style per-sample schema)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.errors import DataError

# The filter's own reasons; every registered selector adds its name (see reasons()).
FILTER_REASONS = ("kept", "outlier", "label", "similar")


def reasons() -> tuple[str, ...]:
    """Every valid ``reason``: the filter's, then each registered selector's name."""
    from thresher.filter.baselines import SELECTORS

    return FILTER_REASONS + tuple(SELECTORS.names())


COLUMNS = (
    "id",
    "kept",
    "reason",
    "score",
    "representative_id",
    "label",
    "outlier_score",
    "signal",
)
# What flagged a near-duplicate: a layer's embedding (the thesis) or aligned pixels (copies).
SIGNALS = ("", "embedding", "pixels")


@dataclass(frozen=True, eq=False)
class FilterResult:
    """What a filter kept and removed, one row per sample, in input order.

    Attributes:
        ids: ``(N,)`` str sample ids.
        kept: ``(N,)`` bool, True for the items that stay.
        reason: ``(N,)`` str, one of ``"kept"``, ``"outlier"``, ``"label"`` (a label issue:
            the given label is likely wrong), ``"similar"``, ``"random"``, ``"uniqueness"``
            (the last two: removed by that baseline).
        score: ``(N,)`` float in ``[0, 1]``, higher = more removable. Per method:

            * ``filter``: outliers and kept items carry their outlier score (the outlier
              stage's score divided by its largest value in the group, GLOSH as is);
              near-duplicates carry their cosine similarity to the item they duplicate
              (clipped at 0). With ``outliers=0`` no outlier score is computed and kept
              items score 0. Label issues carry their label-issue score.
            * ``random``: the random priority; the highest ``N - keep`` priorities go.
            * ``uniqueness``: ``1 - uniqueness`` (FiftyOne's score); the least unique go.
        representative_id: ``(N,)`` str; for a near-duplicate the id of the kept item it
            duplicates, ``""`` for every other row (kept items included).
        labels: ``(N,)`` class labels the budgets were shared over (the true labels, or the
            model's predictions when ``params["label_source"] == "predictions"``), or None.
        method: ``"filter"``, ``"random"`` or ``"uniqueness"``.
        params: the parameters used and what the algorithms reported (JSON-ready).
        outlier_scores: ``(N,)`` the outlier stage's score in ``[0, 1]`` for every row, or
            None where no outlier stage ran.
        signal: ``(N,)`` str, for each near-duplicate what found it: ``"embedding"`` (close
            in the layer's space, the thesis) or ``"pixels"`` (an aligned pixel copy);
            ``""`` for every other row. None for results written before signals existed.
    """

    ids: np.ndarray
    kept: np.ndarray
    reason: np.ndarray
    score: np.ndarray
    representative_id: np.ndarray
    labels: np.ndarray | None
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    outlier_scores: np.ndarray | None = None
    signal: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        for name in ("kept", "reason", "score", "representative_id"):
            if getattr(self, name).shape != (n,):
                raise DataError(
                    f"filter result column {name!r} has shape {getattr(self, name).shape}, "
                    f"expected ({n},); the table is corrupt, re-run the filter"
                )
        for name in ("labels", "outlier_scores", "signal"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise DataError(
                    f"filter result column {name!r} has shape {arr.shape}, expected ({n},); "
                    "the table is corrupt, re-run the filter"
                )
        if self.signal is not None and not np.isin(self.signal, SIGNALS).all():
            raise DataError(
                f"unknown near-duplicate signal in a filter result (valid: {SIGNALS}); "
                "re-run the filter"
            )
        bad = ~np.isin(self.reason, reasons())
        if bad.any():
            raise DataError(
                f"unknown reason {self.reason[bad][0]!r} in a filter result "
                f"(valid: {', '.join(reasons())}); re-run the filter"
            )
        if not np.array_equal(self.kept, self.reason == "kept"):
            raise DataError("filter result rows disagree on kept vs reason; re-run the filter")
        if n and not (np.all(self.score >= 0.0) and np.all(self.score <= 1.0)):
            raise DataError("filter result scores fall outside [0, 1]; re-run the filter")
        if not np.array_equal(self.representative_id != "", self.reason == "similar"):
            raise DataError(
                "filter result: representative_id must be set exactly for near-duplicates; "
                "re-run the filter"
            )

    # --- per-sample views ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def kept_ids(self) -> np.ndarray:
        """``(n_kept,)`` ids of the kept items, in input order."""
        return self.ids[self.kept]

    @property
    def removed_ids(self) -> np.ndarray:
        """``(n_removed,)`` ids of the removed items, in input order."""
        return self.ids[~self.kept]

    @property
    def is_outlier(self) -> np.ndarray:
        """``(N,)`` bool, removed as an outlier."""
        return self.reason == "outlier"

    @property
    def is_similar(self) -> np.ndarray:
        """``(N,)`` bool, removed as a near-duplicate of ``representative_id``."""
        return self.reason == "similar"

    @property
    def outlier_score(self) -> np.ndarray:
        """``(N,)`` outlier score in ``[0, 1]`` of every row (zeros where none was computed)."""
        if self.outlier_scores is None:
            return np.zeros(len(self), dtype=np.float64)
        return self.outlier_scores

    # --- aggregates ------------------------------------------------------------------------
    @property
    def counts(self) -> dict[str, int]:
        """Items per reason, plus ``total``."""
        out = {"total": len(self)}
        out.update({r: int((self.reason == r).sum()) for r in reasons()})
        return out

    @property
    def per_class(self) -> dict[Any, dict[str, int]]:
        """``class -> {total, kept, outlier, similar, other}`` (``other``: removed by a
        baseline); a single ``"all"`` row when there are no labels."""
        groups: dict[Any, np.ndarray] = {}
        if self.labels is None:
            groups["all"] = np.ones(len(self), dtype=bool)
        else:
            for c in np.unique(self.labels):
                groups[c.item() if isinstance(c, np.generic) else c] = self.labels == c
        table = {}
        for c, mask in groups.items():
            r = self.reason[mask]
            table[c] = {
                "total": int(mask.sum()),
                "kept": int((r == "kept").sum()),
                "outlier": int((r == "outlier").sum()),
                "label": int((r == "label").sum()),
                "similar": int((r == "similar").sum()),
                "other": int(np.isin(r, ("random", "uniqueness")).sum()),
            }
        return table

    def summary(self) -> str:
        """``"filter: kept 900/1000 (90.0%); removed 50 outlier, 50 similar"``."""
        c = self.counts
        removed = [f"{c[r]} {r}" for r in reasons()[1:] if c[r]]
        pct = 100.0 * c["kept"] / c["total"] if c["total"] else 0.0
        tail = f"; removed {', '.join(removed)}" if removed else ""
        return f"{self.method}: kept {c['kept']}/{c['total']} ({pct:.1f}%){tail}"

    # --- export ----------------------------------------------------------------------------
    def to_dict(self, *, per_sample: bool = False) -> dict[str, Any]:
        """JSON-ready: method, params, counts, the per-class table (keys as str), summary;
        with ``per_sample=True`` also the columns of :meth:`to_table`."""
        out: dict[str, Any] = {
            "method": self.method,
            "params": self.params,
            "counts": self.counts,
            "per_class": {str(k): v for k, v in self.per_class.items()},
            "summary": self.summary(),
        }
        if per_sample:
            out["samples"] = {
                "id": self.ids.tolist(),
                "kept": self.kept.tolist(),
                "reason": self.reason.tolist(),
                "score": self.score.tolist(),
                "representative_id": self.representative_id.tolist(),
                "label": None if self.labels is None else self.labels.tolist(),
                "outlier_score": (
                    None if self.outlier_scores is None else self.outlier_scores.tolist()
                ),
                "signal": None if self.signal is None else self.signal.tolist(),
            }
        return out

    def to_table(self) -> Any:
        """A ``pyarrow.Table`` with columns ``id, kept, reason, score, representative_id,
        label, outlier_score, signal`` (the last three null where absent); ``method``
        and ``params`` ride in the schema metadata, so :meth:`from_table` restores all."""
        import pyarrow as pa

        n = len(self)
        label = pa.nulls(n, pa.int64()) if self.labels is None else pa.array(self.labels)
        outlier = (
            pa.nulls(n, pa.float64())
            if self.outlier_scores is None
            else pa.array(self.outlier_scores, type=pa.float64())
        )
        table = pa.table(
            {
                "id": pa.array(self.ids, type=pa.string()),
                "kept": pa.array(self.kept, type=pa.bool_()),
                "reason": pa.array(self.reason, type=pa.string()),
                "score": pa.array(self.score, type=pa.float64()),
                "representative_id": pa.array(self.representative_id, type=pa.string()),
                "label": label,
                "outlier_score": outlier,
                "signal": (
                    pa.nulls(n, pa.string())
                    if self.signal is None
                    else pa.array(self.signal, type=pa.string())
                ),
            }
        )
        return table.replace_schema_metadata(
            {"method": self.method, "params": json.dumps(self.params, sort_keys=True)}
        )

    @classmethod
    def from_table(
        cls, table: Any, *, method: str | None = None, params: dict[str, Any] | None = None
    ) -> FilterResult:
        """Rebuild from :meth:`to_table`'s output (e.g. read back from a run's parquet).

        ``method``/``params`` default to the ones stored in the table's metadata.
        """
        missing = [c for c in COLUMNS[:5] if c not in table.column_names]
        if missing:
            raise DataError(
                f"filter table lacks column(s) {', '.join(missing)}; "
                "it was not written by FilterResult.to_table — re-run the filter"
            )
        meta = {
            k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()
        }  # pyarrow keeps metadata as bytes
        label = _optional_column(table, "label")
        outlier = _optional_column(table, "outlier_score")
        signal = _optional_column(table, "signal")
        return cls(
            ids=np.asarray(table.column("id").to_pylist(), dtype=str),
            kept=np.asarray(table.column("kept").to_numpy(zero_copy_only=False), dtype=bool),
            reason=np.asarray(table.column("reason").to_pylist(), dtype=str),
            score=np.asarray(table.column("score").to_numpy(zero_copy_only=False), np.float64),
            representative_id=np.asarray(table.column("representative_id").to_pylist(), str),
            labels=label,
            method=method if method is not None else meta.get("method", "filter"),
            params=params if params is not None else json.loads(meta.get("params", "{}")),
            outlier_scores=None if outlier is None else outlier.astype(np.float64),
            signal=None if signal is None else signal.astype(str),
        )


def _optional_column(table: Any, name: str) -> np.ndarray | None:
    if name not in table.column_names:
        return None
    col = table.column(name)
    if col.null_count == len(col):
        return None
    return np.asarray(col.to_numpy(zero_copy_only=False))
