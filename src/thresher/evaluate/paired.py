"""Is a subset really better than another? The paired difference over seeds.

Two subsets evaluated with the same seeds give one accuracy each per seed; seed ``s`` decides
the initial weights, batch order and augmentation of both models, so the per-seed difference
removes most of the seed noise. Reported: the mean difference, its two-sided confidence interval
from Student's t with ``n - 1`` degrees of freedom, and the paired t-test's p-value
(``scipy.stats.ttest_rel``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from thresher.errors import ConfigError


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over paired seeds.

    Attributes:
        mean: mean of the per-seed differences (accuracy as a fraction).
        ci_low, ci_high: the confidence interval of the mean (NaN with one seed).
        p_value: two-sided paired t-test (NaN with one seed; 1 when every difference is 0).
        n: number of seed pairs.
        confidence: the interval's level.
    """

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    confidence: float = 0.95

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0 (False when it cannot be computed)."""
        return bool(self.ci_low > 0 or self.ci_high < 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self, *, unit: float = 100.0) -> str:
        """``+0.31 points [−0.05, +0.67], p = 0.08, 5 seeds`` (accuracy in percent points)."""
        text = f"{unit * self.mean:+.2f} points"
        if self.n > 1:
            text += (
                f" [{unit * self.ci_low:+.2f}, {unit * self.ci_high:+.2f}], p = {self.p_value:.2g}"
            )
        return text + f", {self.n} seed{'s' if self.n != 1 else ''}"


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, confidence: float = 0.95
) -> PairedDifference:
    """The paired difference ``a - b`` of two ``(n,)`` per-seed results, seed ``i`` with seed
    ``i``."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ConfigError(
            f"a paired difference needs two equally long lists of per-seed results, got "
            f"{x.shape} and {y.shape}; evaluate both subsets with the same seeds"
        )
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    d = x - y
    n = int(d.size)
    mean = float(d.mean())
    if n == 1:
        return PairedDifference(mean, math.nan, math.nan, math.nan, n, confidence)
    sd = float(d.std(ddof=1))
    if sd < 1e-12:  # every seed moved by the same amount (up to float rounding)
        p = 1.0 if mean == 0.0 else 0.0
        return PairedDifference(mean, mean, mean, p, n, confidence)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    p_value = float(stats.ttest_rel(x, y).pvalue)
    return PairedDifference(mean, mean - half, mean + half, p_value, n, confidence)
