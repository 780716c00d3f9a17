"""The paired difference over seeds: analytic values, edge cases, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from thresher.errors import ConfigError
from thresher.evaluate.paired import paired_difference


def test_matches_the_textbook_paired_t_interval() -> None:
    a = np.array([0.91, 0.93, 0.92, 0.95])
    b = np.array([0.90, 0.90, 0.91, 0.92])
    d = a - b  # 0.01, 0.03, 0.01, 0.03: mean 0.02, sd 0.011547
    res = paired_difference(a, b)
    half = stats.t.ppf(0.975, 3) * np.std(d, ddof=1) / 2
    assert res.mean == pytest.approx(0.02)
    assert res.ci_low == pytest.approx(0.02 - half)
    assert res.ci_high == pytest.approx(0.02 + half)
    # t = 0.02 / (0.011547 / 2) = 3.464 with 3 degrees of freedom
    assert res.p_value == pytest.approx(2 * stats.t.sf(0.02 / (np.std(d, ddof=1) / 2), 3))
    assert res.significant
    assert "+2.00 points" in res.summary()
    assert "4 seeds" in res.summary()


def test_noise_around_zero_is_not_significant() -> None:
    a = np.array([0.90, 0.92, 0.91])
    b = np.array([0.91, 0.91, 0.91])
    res = paired_difference(a, b)
    assert res.mean == pytest.approx(0.0)
    assert not res.significant
    assert res.p_value == pytest.approx(1.0)


def test_one_seed_and_constant_differences() -> None:
    one = paired_difference(np.array([0.9]), np.array([0.8]))
    assert one.mean == pytest.approx(0.1)
    assert math.isnan(one.ci_low)
    assert math.isnan(one.p_value)
    assert not one.significant
    same = paired_difference(np.array([0.9, 0.8]), np.array([0.9, 0.8]))
    assert same.p_value == 1.0
    assert same.ci_low == same.ci_high == 0.0
    shift = paired_difference(np.array([0.9, 0.8]), np.array([0.8, 0.7]))
    assert shift.p_value == 0.0
    assert shift.significant


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ConfigError, match="same seeds"):
        paired_difference(np.array([0.9, 0.8]), np.array([0.9]))
    with pytest.raises(ConfigError, match="confidence must be in"):
        paired_difference(np.array([0.9, 0.8]), np.array([0.9, 0.7]), confidence=1.0)
