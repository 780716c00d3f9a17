"""FilterResult: the one per-sample schema every filter returns, and its round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from thresher.errors import DataError
from thresher.filter import FilterResult


def _result(**overrides: object) -> FilterResult:
    fields: dict[str, object] = {
        "ids": np.array(["a", "b", "c", "d", "e"]),
        "kept": np.array([True, False, True, False, True]),
        "reason": np.array(["kept", "outlier", "kept", "similar", "kept"]),
        "score": np.array([0.1, 0.9, 0.2, 0.97, 0.0]),
        "representative_id": np.array(["", "", "", "c", ""]),
        "labels": np.array([0, 0, 1, 1, 1]),
        "method": "filter",
        "params": {"outliers": 0.2, "similar": 0.2},
        "outlier_scores": np.array([0.1, 0.9, 0.2, 0.3, 0.0]),
    }
    fields.update(overrides)
    return FilterResult(**fields)  # type: ignore[arg-type]


def test_views_counts_and_per_class_table() -> None:
    r = _result()
    assert r.kept_ids.tolist() == ["a", "c", "e"]
    assert r.removed_ids.tolist() == ["b", "d"]
    assert r.is_outlier.tolist() == [False, True, False, False, False]
    assert r.is_similar.tolist() == [False, False, False, True, False]
    assert r.outlier_score.tolist() == [0.1, 0.9, 0.2, 0.3, 0.0]
    # one count per valid reason (the filter's, then every registered selector's)
    from thresher.filter import reasons

    assert list(r.counts) == ["total", *reasons()]
    assert {"random", "uniqueness"} <= set(r.counts)
    assert r.counts == {
        "total": 5,
        "kept": 3,
        "outlier": 1,
        "label": 0,
        "similar": 1,
        **dict.fromkeys(reasons()[4:], 0),
    }
    assert r.per_class == {
        0: {"total": 2, "kept": 1, "outlier": 1, "label": 0, "similar": 0, "other": 0},
        1: {"total": 3, "kept": 2, "outlier": 0, "label": 0, "similar": 1, "other": 0},
    }
    assert r.summary() == "filter: kept 3/5 (60.0%); removed 1 outlier, 1 similar"


def test_unlabelled_result_has_one_all_row_and_zero_outlier_scores() -> None:
    r = _result(labels=None, outlier_scores=None)
    assert r.per_class == {
        "all": {"total": 5, "kept": 3, "outlier": 1, "label": 0, "similar": 1, "other": 0}
    }
    assert r.outlier_score.tolist() == [0.0] * 5


def test_parquet_round_trip_restores_everything(tmp_path: Path) -> None:
    r = _result()
    table = r.to_table()
    assert table.column_names == [
        "id",
        "kept",
        "reason",
        "score",
        "representative_id",
        "label",
        "outlier_score",
        "signal",
    ]
    pq.write_table(table, tmp_path / "filter.parquet")
    back = FilterResult.from_table(pq.read_table(tmp_path / "filter.parquet"))
    for name in ("ids", "kept", "reason", "score", "representative_id", "labels"):
        np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
    np.testing.assert_array_equal(back.outlier_scores, r.outlier_scores)
    assert back.method == "filter"
    assert back.params == r.params


def test_round_trip_keeps_absent_labels_absent(tmp_path: Path) -> None:
    r = _result(labels=None, outlier_scores=None, method="random")
    back = FilterResult.from_table(r.to_table())
    assert back.labels is None
    assert back.outlier_scores is None
    assert back.method == "random"


def test_to_dict_is_json_ready() -> None:
    d = json.loads(json.dumps(_result().to_dict(per_sample=True)))
    assert d["counts"]["kept"] == 3
    assert d["per_class"]["1"]["similar"] == 1
    assert d["samples"]["representative_id"][3] == "c"
    assert "samples" not in _result().to_dict()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"reason": np.array(["kept", "outlier", "kept", "similar", "gone"])}, "unknown reason"),
        ({"score": np.array([0.1, 1.5, 0.2, 0.9, 0.0])}, "outside \\[0, 1\\]"),
        ({"representative_id": np.array(["", "", "", "", ""])}, "representative_id"),
        ({"kept": np.array([True, True, True, False, True])}, "kept vs reason"),
        ({"score": np.zeros(3)}, "shape"),
    ],
)
def test_inconsistent_results_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        _result(**overrides)


def test_from_table_refuses_a_foreign_table() -> None:
    import pyarrow as pa

    with pytest.raises(DataError, match="lacks column"):
        FilterResult.from_table(pa.table({"id": ["a"], "kept": [True]}))
