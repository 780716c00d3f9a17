"""Exact removal counts: the thesis's ceil/floor, globally and shared over classes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.filter.budgets import (
    apportion,
    ceil_count,
    floor_count,
    global_budget,
    per_class_budgets,
)


@pytest.mark.parametrize(
    ("n", "outliers", "similar", "expected"),
    [
        (1000, 0.05, 0.05, (50, 900, 50)),
        (1001, 0.05, 0.05, (51, 900, 50)),  # ceil(50.05) = 51, floor(900.9) = 900
        (100, 0.29, 0.0, (29, 71, 0)),
        (7, 0.0, 0.5, (0, 3, 4)),
    ],
)
def test_global_budget_follows_the_thesis_rounding(
    n: int, outliers: float, similar: float, expected: tuple[int, int, int]
) -> None:
    b = global_budget(n, outliers=outliers, similar=similar)
    assert (b.outliers, b.kept, b.similar) == expected
    assert b.outliers + b.kept + b.similar == n


def test_rounding_is_immune_to_decimal_float_noise() -> None:
    assert math.floor(0.29 * 100) == 28  # the trap
    assert floor_count(0.29 * 100) == 29
    assert math.ceil(0.07 * 100) == 8  # the other trap
    assert ceil_count(0.07 * 100) == 7


def test_per_class_budgets_share_the_global_totals_by_largest_remainder() -> None:
    budgets = per_class_budgets(np.array([110, 290, 600]), outliers=0.05, similar=0.10)
    # outlier quotas 5.5 / 14.5 / 30 -> 5 / 14 / 30 + the one missing unit to the first tie
    assert [b.outliers for b in budgets] == [6, 14, 30]
    # kept quotas 93.5 / 246.5 / 510 -> total floor(0.85 * 1000) = 850
    assert [b.kept for b in budgets] == [94, 246, 510]
    assert [b.similar for b in budgets] == [10, 30, 60]
    whole = global_budget(1000, outliers=0.05, similar=0.10)
    assert sum(b.outliers for b in budgets) == whole.outliers
    assert sum(b.kept for b in budgets) == whole.kept


def test_every_class_with_items_left_keeps_at_least_one() -> None:
    budgets = per_class_budgets(np.array([1, 1, 98]), outliers=0.0, similar=0.5)
    assert [b.kept for b in budgets] == [1, 1, 48]
    assert sum(b.kept for b in budgets) == global_budget(100, outliers=0, similar=0.5).kept


def test_fewer_kept_items_than_classes_is_refused_with_the_fix() -> None:
    # 12 items, 4 outliers, 2 kept, but 3 classes keep items after the outliers: one class
    # would lose everything as near-duplicates of nothing (found by hypothesis).
    with pytest.raises(ConfigError, match=r"keep 2 of 12 items.*3 classes.*--global"):
        per_class_budgets(np.array([3, 5, 4]), outliers=0.29, similar=0.5)


def test_apportion_respects_bounds_and_total() -> None:
    out = apportion(10, np.array([4.6, 4.6, 0.8]), upper=np.array([4, 10, 10]))
    assert out.tolist() == [4, 5, 1]
    assert apportion(3, np.array([0.1, 0.1, 0.1]), lower=np.ones(3)).tolist() == [1, 1, 1]
