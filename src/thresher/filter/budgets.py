"""How many items each stage removes: the thesis's rounding, globally or per class.

Globally (thesis section 4.2): ``ceil(outliers x N)`` outliers are removed and the remaining
items are clustered down to ``K = floor((1 - outliers - similar) x N)`` clusters, so
``N - ceil(outliers x N) - K`` near-duplicates go.

Per class, the same global totals are shared out over the classes by the largest-remainder
(Hamilton) method: class ``c`` gets ``floor(quota_c)`` or ``floor(quota_c) + 1`` where
``quota_c = fraction x n_c``, the classes with the largest fractional parts (ties: the class
that sorts first) get the extra units, and the per-class counts sum exactly to the global
count. So per-class totals equal the global ones, and every class is within one item of its
exact share. A class that keeps any item keeps at least one cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thresher.errors import ConfigError

# Fractions arrive as decimal floats (0.29 * 100 = 28.999999999999996); rounding goes through
# this tolerance so that a count the user can do in their head comes out as they expect.
_EPS = 1e-9


def floor_count(x: float) -> int:
    """``floor(x)``, robust to float noise just below an integer."""
    return math.floor(x + _EPS)


def ceil_count(x: float) -> int:
    """``ceil(x)``, robust to float noise just above an integer."""
    return math.ceil(x - _EPS)


@dataclass(frozen=True)
class Budget:
    """Counts for one group of ``n`` items.

    Attributes:
        n: items in the group.
        outliers: items removed as outliers.
        kept: clusters (= kept items) after near-duplicate removal.
    """

    n: int
    outliers: int
    kept: int

    @property
    def similar(self) -> int:
        """Items removed as near-duplicates."""
        return self.n - self.outliers - self.kept

    @property
    def remaining(self) -> int:
        """Items left for the near-duplicate stage."""
        return self.n - self.outliers


def global_budget(n: int, *, outliers: float, similar: float) -> Budget:
    """The thesis's counts for ``n`` items: ``ceil(o n)`` outliers, ``floor((1-o-s) n)`` kept."""
    n_out = min(ceil_count(outliers * n), n)
    kept = min(floor_count((1.0 - outliers - similar) * n), n - n_out)
    return Budget(n=n, outliers=n_out, kept=max(kept, 0))


def apportion(
    total: int,
    quotas: np.ndarray,
    *,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    """Integers close to ``quotas`` that sum to ``total`` (largest remainder, with bounds).

    Parameters
    ----------
    total : the sum the result must have.
    quotas : ``(C,)`` exact (fractional) shares.
    lower, upper : ``(C,)`` bounds per entry (default 0 and unbounded).

    Returns
    -------
    ``(C,)`` int64. Ties in the fractional parts go to the earlier entry.
    """
    quotas = np.asarray(quotas, dtype=np.float64)
    c = quotas.shape[0]
    lo = np.zeros(c, dtype=np.int64) if lower is None else np.asarray(lower, dtype=np.int64)
    hi = (
        np.full(c, np.iinfo(np.int64).max, dtype=np.int64)
        if upper is None
        else np.asarray(upper, dtype=np.int64)
    )
    if lo.sum() > total:  # bounds cannot all hold: the lower bounds give way first
        lo = np.zeros(c, dtype=np.int64)
    total = int(min(total, hi.sum()))
    out = np.clip(np.floor(quotas + _EPS).astype(np.int64), lo, hi)
    gap = total - int(out.sum())
    order = np.arange(c)
    while gap != 0:
        # The entry furthest below (above) its quota gets (gives) the next unit.
        deficit = quotas - out
        if gap > 0:
            ok = out < hi
            pick = order[ok][np.lexsort((order[ok], -deficit[ok]))[0]]
            out[pick] += 1
            gap -= 1
        else:
            ok = out > lo
            pick = order[ok][np.lexsort((order[ok], deficit[ok]))[0]]
            out[pick] -= 1
            gap += 1
    return out


def per_class_budgets(sizes: np.ndarray, *, outliers: float, similar: float) -> list[Budget]:
    """Budgets per class whose totals equal :func:`global_budget` of the whole set.

    Parameters
    ----------
    sizes : ``(C,)`` items per class, in class order.
    outliers, similar : fractions in ``[0, 1)``.

    Raises
    ------
    ConfigError
        fewer items are kept than there are classes with items left after the outliers: a
        class would lose all its items as near-duplicates of nothing.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    whole = global_budget(int(sizes.sum()), outliers=outliers, similar=similar)
    n_out = apportion(whole.outliers, outliers * sizes, upper=sizes)
    remaining = sizes - n_out
    needed = int((remaining > 0).sum())
    if whole.kept < needed:
        raise ConfigError(
            f"per-class filtering would keep {whole.kept} of {int(sizes.sum())} items, but "
            f"{needed} classes have items left after the outliers and each needs one kept item "
            "to stand for its near-duplicates; lower --outliers/--similar, or filter the "
            "whole set at once (--global)"
        )
    kept = apportion(
        whole.kept,
        (1.0 - outliers - similar) * sizes,
        lower=np.minimum(remaining, 1),
        upper=remaining,
    )
    return [
        Budget(n=int(n), outliers=int(o), kept=int(k))
        for n, o, k in zip(sizes, n_out, kept, strict=True)
    ]
