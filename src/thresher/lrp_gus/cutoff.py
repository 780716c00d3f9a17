"""Choosing the cutoff iteration ``i_c`` of a search trace (the subset ``T_c``).

``drop``: the paper's rule. The accuracy line ``reference - drop`` (reference = a model on the
full T, same split) crosses the accuracy curve; ``i_c`` is the last iteration before the first
one whose accuracy falls below the line (all of them when none does).

``knee``: the regime shift the paper names as future work, by Kneedle (Satopaa et al. 2011)
on accuracy against compression: points sorted by compression, smoothed by a centred moving
mean, both axes scaled to [0, 1]; the knee maximises ``acc_n - (1 - r_n)`` on the flipped axis,
i.e. the point farthest above the chord from (max compression, min accuracy) to (min
compression, max accuracy); ``i_c`` is the iteration at that point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from thresher.errors import ConfigError, DataError
from thresher.lrp_gus.search import SearchTrace


@dataclass(frozen=True)
class Cutoff:
    """The chosen iteration and its subset's class counts.

    Attributes:
        rule: ``"drop:0.03"`` or ``"knee"``.
        iteration: ``i_c``.
        counts: ``(K,)`` class counts of ``T_c``.
        size, compression, accuracy: of ``T_c`` (accuracy on the search's evaluation split).
        threshold: the accuracy line (``drop`` only; NaN for ``knee``).
        reference_accuracy: the full-T model's accuracy (NaN when not known).
        met: whether the subset meets the rule (``drop``: its accuracy is on or above the line).
            ``False`` when even the first iteration is below the line: the cutoff is then the
            first iteration, and the summary says so rather than pass it off as a valid cutoff.
    """

    rule: str
    iteration: int
    counts: tuple[int, ...]
    size: int
    compression: float
    accuracy: float
    threshold: float = float("nan")
    reference_accuracy: float = float("nan")
    met: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_rule(rule: str) -> tuple[str, float]:
    """``"drop:0.03"`` -> ``("drop", 0.03)``; ``"drop"`` means 0.03; ``"knee"`` -> (knee, nan)."""
    name, _, value = rule.partition(":")
    if name == "knee" and not value:
        return "knee", float("nan")
    if name == "drop":
        try:
            drop = float(value) if value else 0.03
        except ValueError:
            raise ConfigError(f"--cutoff drop:X needs a number, got {rule!r}") from None
        if not 0 <= drop < 1:
            raise ConfigError(f"the accuracy drop must be a fraction in [0, 1), got {drop:g}")
        return "drop", drop
    raise ConfigError(f"unknown cutoff {rule!r}; use drop:0.03 (the paper's rule) or knee")


def choose_cutoff(
    trace: SearchTrace, rule: str = "drop:0.03", *, reference_accuracy: float | None = None
) -> Cutoff:
    """The cutoff of ``trace`` by ``rule`` (``drop:X`` needs ``reference_accuracy``)."""
    name, drop = parse_rule(rule)
    if not trace.records:
        raise DataError("the search has no iteration yet; run it before choosing a cutoff")
    acc = trace.column("accuracy").astype(np.float64)
    ref = float("nan") if reference_accuracy is None else float(reference_accuracy)
    threshold = float("nan")
    if name == "drop":
        if reference_accuracy is None:
            raise ConfigError("the drop cutoff needs the full-T model's accuracy (reference)")
        threshold = ref - drop
        below = np.flatnonzero(acc < threshold)
        i_c = len(acc) - 1 if below.size == 0 else max(int(below[0]) - 1, 0)
    else:
        i_c = knee_iteration(trace.column("compression"), acc)
    rec = trace.records[i_c]
    return Cutoff(
        rule=f"drop:{drop:g}" if name == "drop" else "knee",
        iteration=rec.iteration,
        counts=rec.counts,
        size=rec.size,
        compression=rec.compression,
        accuracy=rec.accuracy,
        threshold=threshold,
        reference_accuracy=ref,
        met=bool(name != "drop" or acc[i_c] >= threshold),
    )


def knee_iteration(compression: np.ndarray, accuracy: np.ndarray, *, window: int = 0) -> int:
    """Kneedle on accuracy vs compression; returns the index of the knee's iteration.

    ``window`` is the moving-mean width (odd; 0 = about 5% of the points, at least 1).
    """
    r = np.asarray(compression, dtype=np.float64)
    a = np.asarray(accuracy, dtype=np.float64)
    n = len(r)
    if n < 3:
        return n - 1
    order = np.argsort(r, kind="stable")
    rs, as_ = r[order], a[order]
    w = window or max(1, (n // 20) | 1)
    if w > 1:
        pad = w // 2
        padded = np.pad(as_, pad, mode="edge")
        as_ = np.convolve(padded, np.ones(w) / w, mode="valid")
    span_r = rs[-1] - rs[0]
    span_a = as_.max() - as_.min()
    if span_r <= 0 or span_a <= 0:
        return int(order[-1])  # flat curve: no shift, keep the most compressed
    rn = (rs - rs[0]) / span_r
    an = (as_ - as_.min()) / span_a
    diff = an - (1.0 - rn)  # accuracy above the chord, flipped so the curve is concave-up
    return int(order[int(np.argmax(diff))])
