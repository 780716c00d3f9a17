"""The LRP-GUS search of Table 1 (seed 000), as read in DESIGN.md.

Each iteration ``k`` draws ``I_k`` from ``T`` with class counts ``p_k``, trains a model on it
and scores it (validation accuracy, per-class F1, the per-class negative intensity ``f_k`` of
eq. 2). With ``delta_f = f_k - f_{k-1}`` (``f_{-1} = 0``) every class has an action: shrink by
``down`` if ``delta_f_j > 0``, else grow by ``up``. The chosen class ``c_k`` is the one whose
action is allowed by the ``lim`` constraint with the largest ``|delta_f_j|`` (or another rule
from :data:`CHOICES`). The search stops at ``Nmax`` iterations, when a class count is 0, or when
no class may act.

The scorer (train + relevance) is a parameter, so the bookkeeping is testable without
training. Every per-iteration random draw is seeded by ``(seed, k)``, never by a global stream,
so a resumed search repeats the uninterrupted one exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from thresher.errors import ConfigError, DataError
from thresher.registry import Registry

Constraint = Literal["lower", "band"]
Sampling = Literal["nested", "fresh"]
STOP_NMAX = "nmax"
STOP_ZERO = "class_count_zero"
STOP_NONE_ALLOWED = "no_class_may_act"
STOP_PAST_CUTOFF = "past_cutoff"  # the caller's stop rule (e.g. --stop-after-cutoff) said so


@dataclass(frozen=True)
class SearchSettings:
    """Parameters of the search (the paper's MNIST values by default).

    Attributes:
        p0: initial count per class (one number for all, or one per class).
        up, down: growth and shrink fractions, ``up`` in (0, 10], ``down`` in (0, 1).
        lim: the constraint fraction in [0, 1].
        iterations: ``Nmax`` >= 1.
        constraint: ``"lower"``: a shrink must keep the count >= ``(1 - lim) * mean(p')``;
            ``"band"``: every action must keep it in ``[(1 - lim), (1 + lim)] * mean(p')``
            (``p'`` = the counts after the action).
        choice: how ``c_k`` is picked among allowed classes (see :data:`CHOICES`).
        sampling: ``"nested"``: one seeded order per class, ``I`` takes its first ``p_j``
            (subsets grow and shrink by whole images); ``"fresh"``: a new seeded draw each
            iteration (the paper's plain random undersampling).
        baseline: also train and score a random balanced subset of the same size each iteration.
        seed: the master seed.
    """

    p0: int | tuple[int, ...] = 2000
    up: float = 0.05
    down: float = 0.20
    lim: float = 0.40
    iterations: int = 1000
    constraint: Constraint = "lower"
    choice: str = "max_abs_delta"
    sampling: Sampling = "nested"
    baseline: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.p0, int):
            object.__setattr__(self, "p0", tuple(int(v) for v in self.p0))
        if not 0 < self.up <= 10:
            raise ConfigError(f"up must be a fraction in (0, 10], got {self.up!r} (e.g. 0.05)")
        if not 0 < self.down < 1:
            raise ConfigError(f"down must be a fraction in (0, 1), got {self.down!r} (e.g. 0.20)")
        if not 0 <= self.lim <= 1:
            raise ConfigError(f"lim must be a fraction in [0, 1], got {self.lim!r} (e.g. 0.40)")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise ConfigError(f"iterations must be an integer, got {self.iterations!r}")
        if self.iterations < 1:
            raise ConfigError(f"iterations (Nmax) must be >= 1, got {self.iterations}")
        if self.constraint not in ("lower", "band"):
            raise ConfigError(f"constraint must be 'lower' or 'band', got {self.constraint!r}")
        if self.sampling not in ("nested", "fresh"):
            raise ConfigError(f"sampling must be 'nested' or 'fresh', got {self.sampling!r}")
        CHOICES.get(self.choice)  # unknown name -> ConfigError listing the valid ones
        counts = (self.p0,) if isinstance(self.p0, int) else self.p0
        if not counts or min(counts) < 1:
            raise ConfigError(f"p0 must be >= 1 image per class, got {self.p0!r}")

    def initial_counts(self, num_classes: int) -> np.ndarray:
        if isinstance(self.p0, int):
            return np.full(num_classes, self.p0, dtype=np.int64)
        if len(self.p0) != num_classes:
            raise ConfigError(
                f"p0 gives {len(self.p0)} counts but T has {num_classes} classes; give one each"
            )
        return np.asarray(self.p0, dtype=np.int64)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["p0"] = self.p0 if isinstance(self.p0, int) else list(self.p0)
        return d


# --- scoring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """What one trained model says about its training subset.

    Attributes:
        accuracy: accuracy on the evaluation split (validation by default).
        f1: ``(K,)`` per-class F1 on the evaluation split.
        f: ``(K,)`` negative intensity per class (eq. 2), or ``None`` when not asked for.
    """

    accuracy: float
    f1: np.ndarray
    f: np.ndarray | None = None


class Scorer(Protocol):
    """``scorer(positions, seed=, relevance=) -> Score``: train on the rows ``positions`` of T
    with ``seed``, evaluate, and (when ``relevance``) score relevance on those rows."""

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score: ...


# --- class choice -----------------------------------------------------------------------------
ChoiceRule = Callable[[np.ndarray, np.ndarray, np.random.Generator], int]
CHOICES: Registry[ChoiceRule] = Registry("class choice", error=ConfigError)


@CHOICES.decorator("max_abs_delta")
def _max_abs_delta(delta: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> int:
    """The allowed class with the largest ``|delta_f|`` (ties: lowest index)."""
    return int(np.argmax(np.where(allowed, np.abs(delta), -np.inf)))


@CHOICES.decorator("max_delta")
def _max_delta(delta: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> int:
    """The allowed class whose score rose most (it shrinks if it rose at all)."""
    return int(np.argmax(np.where(allowed, delta, -np.inf)))


@CHOICES.decorator("min_delta")
def _min_delta(delta: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> int:
    """The allowed class whose score fell most (it grows)."""
    return int(np.argmin(np.where(allowed, delta, np.inf)))


@CHOICES.decorator("random")
def _random(delta: np.ndarray, allowed: np.ndarray, rng: np.random.Generator) -> int:
    """A seeded uniform pick among allowed classes (an ablation: guidance off)."""
    return int(rng.choice(np.flatnonzero(allowed)))


# --- the step ----------------------------------------------------------------------------------
def propose(
    counts: np.ndarray,
    delta: np.ndarray,
    *,
    available: np.ndarray,
    settings: SearchSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every class's action and whether it is allowed.

    Returns
    -------
    new_counts : ``(K,)`` the count of class ``j`` after its own action.
    shrink : ``(K,)`` bool, the action is a shrink (``delta_j > 0``).
    allowed : ``(K,)`` bool, the action respects the constraint and the available images.
    """
    shrink = delta > 0
    shrunk = np.floor(counts * (1.0 - settings.down)).astype(np.int64)
    grown = np.maximum(np.floor(counts * (1.0 + settings.up)).astype(np.int64), counts + 1)
    new_counts = np.where(shrink, shrunk, grown)
    total = counts.sum()
    # mean of p' = the counts after class j's action alone
    mean_after = (total - counts + new_counts) / len(counts)
    low = (1.0 - settings.lim) * mean_after
    high = (1.0 + settings.lim) * mean_after
    fits_low = new_counts >= low - 1e-9
    fits_high = new_counts <= high + 1e-9
    if settings.constraint == "lower":
        allowed = np.where(shrink, fits_low, True)
    else:
        allowed = fits_low & fits_high
    allowed &= new_counts <= available  # cannot grow past the images T has
    return new_counts, shrink, allowed


def subset_positions(
    labels: np.ndarray,
    counts: np.ndarray,
    *,
    settings: SearchSettings,
    iteration: int,
    orders: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Sorted positions in T of an iteration's subset with ``counts[j]`` images of class j."""
    if orders is None:
        orders = class_orders(labels, len(counts), seed=settings.seed)
    if settings.sampling == "fresh":
        rng = np.random.default_rng([settings.seed, iteration, 1])
        orders = [rng.permutation(o) for o in orders]
    return np.sort(np.concatenate([o[: int(c)] for o, c in zip(orders, counts, strict=True)]))


def class_orders(labels: np.ndarray, num_classes: int, *, seed: int) -> list[np.ndarray]:
    """One seeded random order of each class's positions (the nested sampling's order)."""
    rng = np.random.default_rng([seed, 0xC1A55])
    return [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]


def balanced_counts(total: int, available: np.ndarray) -> np.ndarray:
    """``total`` images spread as evenly as possible over classes, capped at ``available``."""
    k = len(available)
    counts = np.zeros(k, dtype=np.int64)
    remaining = int(min(total, available.sum()))
    open_ = available > 0
    while remaining > 0 and open_.any():
        share = max(remaining // int(open_.sum()), 1)
        for j in np.flatnonzero(open_):
            add = min(share, int(available[j] - counts[j]), remaining)
            counts[j] += add
            remaining -= add
            if counts[j] >= available[j]:
                open_[j] = False
            if remaining == 0:
                break
    return counts


def balanced_positions(labels: np.ndarray, total: int, *, seed: int) -> np.ndarray:
    """A seeded random balanced subset of ``total`` positions of ``labels`` (T_c(bal))."""
    k = int(labels.max()) + 1
    available = np.bincount(labels, minlength=k)
    counts = balanced_counts(total, available)
    rng = np.random.default_rng([seed, 0xBA1])
    parts = [rng.permutation(np.flatnonzero(labels == c))[: counts[c]] for c in range(k)]
    return np.sort(np.concatenate(parts))


def iteration_seed(seed: int, iteration: int, stream: int = 0) -> int:
    """The training seed of iteration ``iteration`` (``stream`` 1 = the random baseline)."""
    return int(np.random.SeedSequence([seed, iteration, stream]).generate_state(1)[0] >> 1)


# --- trace and state ----------------------------------------------------------------------------
@dataclass(frozen=True)
class IterationRecord:
    """One row of the trace.

    ``counts`` are the class counts of this iteration's subset; ``new_counts`` those of the
    next one (equal when the search stopped here). ``action`` is ``"shrink"``, ``"grow"`` or
    ``"stop"``; ``chosen`` is -1 when no class acted.
    """

    iteration: int
    counts: tuple[int, ...]
    size: int
    compression: float
    accuracy: float
    f1: tuple[float, ...]
    f: tuple[float, ...]
    delta_f: tuple[float, ...]
    allowed: tuple[bool, ...]
    chosen: int
    action: str
    new_counts: tuple[int, ...]
    seed: int
    seconds: float
    baseline_accuracy: float = math.nan
    baseline_f1: tuple[float, ...] = ()
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IterationRecord:
        fields: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**fields)


@dataclass(frozen=True)
class SearchState:
    """Everything needed to continue a search (written after every iteration).

    Attributes:
        next_iteration: how many iterations are done.
        counts: ``(K,)`` class counts of the next iteration.
        f_prev: ``(K,)`` scores of the last iteration (zeros before the first).
        stop_reason: ``""`` while running, else why it stopped.
    """

    next_iteration: int
    counts: tuple[int, ...]
    f_prev: tuple[float, ...]
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchTrace:
    """The whole search: settings, T's class sizes and one record per iteration."""

    settings: SearchSettings
    class_sizes: tuple[int, ...]
    records: tuple[IterationRecord, ...]
    stop_reason: str
    classes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return int(sum(self.class_sizes))

    def column(self, name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in self.records])

    def to_table(self) -> dict[str, list[Any]]:
        """Columns for a parquet table (per-class values are lists)."""
        rows = [r.to_dict() for r in self.records]
        names = [f.name for f in IterationRecord.__dataclass_fields__.values()]
        return {n: [row[n] for row in rows] for n in names}

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "class_sizes": list(self.class_sizes),
            "classes": list(self.classes),
            "stop_reason": self.stop_reason,
            "iterations": len(self.records),
            "records": [r.to_dict() for r in self.records],
        }


class Checkpoint(Protocol):
    """Where a search stores its progress (see :class:`thresher.lrp_gus.trace.DirCheckpoint`)."""

    def load(self) -> tuple[SearchState, list[IterationRecord]] | None: ...

    def save(self, state: SearchState, records: Sequence[IterationRecord]) -> None: ...


@dataclass
class _Loop:
    """Mutable loop variables (kept out of the public frozen results)."""

    counts: np.ndarray
    f_prev: np.ndarray
    records: list[IterationRecord] = field(default_factory=list)
    stop_reason: str = ""


def check_inputs(
    labels: np.ndarray, num_classes: int, settings: SearchSettings, classes: Sequence[str] = ()
) -> np.ndarray:
    """Validate T against the settings; returns the ``(K,)`` class sizes of T."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise DataError("T must be a non-empty 1-d array of labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"labels must lie in [0, {num_classes}); check the class count")
    sizes = np.bincount(labels, minlength=num_classes).astype(np.int64)
    names = list(classes) or [str(c) for c in range(num_classes)]
    missing = [names[c] for c in range(num_classes) if sizes[c] == 0]
    if missing:
        raise DataError(
            f"class {missing[0]!r} has no image in T ({len(missing)} class(es) missing); the "
            "search needs every class: use a training split that holds all classes"
        )
    p0 = settings.initial_counts(num_classes)
    over = [c for c in range(num_classes) if p0[c] > sizes[c]]
    if over:
        c = over[0]
        raise ConfigError(
            f"p0 = {int(p0[c])} is larger than class {names[c]!r} ({int(sizes[c])} images in "
            f"T); lower --p0 to at most {int(sizes.min())}"
        )
    return sizes


def run_search(
    labels: np.ndarray,
    *,
    num_classes: int,
    settings: SearchSettings,
    scorer: Scorer,
    checkpoint: Checkpoint | None = None,
    classes: Sequence[str] = (),
    progress: Callable[[IterationRecord], None] | None = None,
    stop: Callable[[Sequence[IterationRecord]], bool] | None = None,
) -> SearchTrace:
    """Run (or continue, from ``checkpoint``) the LRP-GUS search over T's ``labels``.

    Parameters
    ----------
    labels : ``(N,)`` class of every image of T.
    num_classes : ``K``.
    settings : the search parameters.
    scorer : trains on positions of T and scores (see :class:`Scorer`).
    checkpoint : saved after every iteration; when it holds a state the search resumes there.
    progress : called with each new record.
    stop : called with the records after each iteration; ``True`` ends the search with
        ``stop_reason="past_cutoff"``. A search stopped so continues on resume when ``stop`` no
        longer says so (e.g. a larger patience).

    Returns
    -------
    SearchTrace with every iteration (the resumed ones included).
    """
    sizes = check_inputs(labels, num_classes, settings, classes)
    labels = np.asarray(labels)
    orders = class_orders(labels, num_classes, seed=settings.seed)
    loop = _Loop(counts=settings.initial_counts(num_classes), f_prev=np.zeros(num_classes))
    stored = checkpoint.load() if checkpoint is not None else None
    if stored is not None:
        state, records = stored
        loop.records = list(records[: state.next_iteration])
        loop.counts = np.asarray(state.counts, dtype=np.int64)
        loop.f_prev = np.asarray(state.f_prev, dtype=np.float64)
        # a search stopped at Nmax continues when asked for more iterations
        more = state.stop_reason == STOP_NMAX and len(loop.records) < settings.iterations
        more |= state.stop_reason == STOP_PAST_CUTOFF and not (stop and stop(loop.records))
        loop.stop_reason = "" if more else state.stop_reason
    total = int(sizes.sum())
    while not loop.stop_reason:
        k = len(loop.records)
        if k >= settings.iterations:
            loop.stop_reason = STOP_NMAX
            break
        if (loop.counts <= 0).any():
            loop.stop_reason = STOP_ZERO
            break
        record = _iterate(k, loop, labels, orders, sizes, total, settings, scorer)
        loop.records.append(record)
        if record.stop_reason:
            loop.stop_reason = record.stop_reason
        elif len(loop.records) >= settings.iterations:
            loop.stop_reason = STOP_NMAX
        elif (loop.counts <= 0).any():
            loop.stop_reason = STOP_ZERO
        elif stop is not None and stop(loop.records):
            loop.stop_reason = STOP_PAST_CUTOFF
        if checkpoint is not None:
            checkpoint.save(_state(loop), loop.records)
        if progress is not None:
            progress(record)
    if checkpoint is not None:  # records why it stopped even when no iteration ran
        checkpoint.save(_state(loop), loop.records)
    return SearchTrace(
        settings=settings,
        class_sizes=tuple(int(s) for s in sizes),
        records=tuple(loop.records),
        stop_reason=loop.stop_reason,
        classes=tuple(classes),
    )


def _state(loop: _Loop) -> SearchState:
    return SearchState(
        next_iteration=len(loop.records),
        counts=tuple(int(c) for c in loop.counts),
        f_prev=tuple(float(v) for v in loop.f_prev),
        stop_reason=loop.stop_reason,
    )


def _iterate(
    k: int,
    loop: _Loop,
    labels: np.ndarray,
    orders: list[np.ndarray],
    sizes: np.ndarray,
    total: int,
    settings: SearchSettings,
    scorer: Scorer,
) -> IterationRecord:
    t0 = time.perf_counter()
    counts = loop.counts.copy()
    positions = subset_positions(labels, counts, settings=settings, iteration=k, orders=orders)
    seed = iteration_seed(settings.seed, k)
    score = scorer(positions, seed=seed, relevance=True)
    if score.f is None or len(score.f) != len(counts) or not np.all(np.isfinite(score.f)):
        raise DataError(f"the scorer returned no finite class scores in iteration {k}")
    f = np.asarray(score.f, dtype=np.float64)
    delta = f - loop.f_prev
    new_counts, shrink, allowed = propose(counts, delta, available=sizes, settings=settings)
    stop_reason = ""
    if allowed.any():
        rng = np.random.default_rng([settings.seed, k, 2])
        chosen = CHOICES.get(settings.choice)(delta, allowed, rng)
        action = "shrink" if shrink[chosen] else "grow"
        next_counts = counts.copy()
        next_counts[chosen] = new_counts[chosen]
    else:
        chosen, action, next_counts = -1, "stop", counts.copy()
        stop_reason = STOP_NONE_ALLOWED
    base_acc: float = math.nan
    base_f1: tuple[float, ...] = ()
    if settings.baseline:
        base_pos = balanced_positions(
            labels, len(positions), seed=iteration_seed(settings.seed, k, 1)
        )
        base = scorer(base_pos, seed=iteration_seed(settings.seed, k, 1), relevance=False)
        base_acc, base_f1 = float(base.accuracy), tuple(float(v) for v in base.f1)
    loop.counts = next_counts
    loop.f_prev = f
    return IterationRecord(
        iteration=k,
        counts=tuple(int(c) for c in counts),
        size=len(positions),
        compression=1.0 - len(positions) / total,
        accuracy=float(score.accuracy),
        f1=tuple(float(v) for v in score.f1),
        f=tuple(float(v) for v in f),
        delta_f=tuple(float(v) for v in delta),
        allowed=tuple(bool(a) for a in allowed),
        chosen=int(chosen),
        action=action,
        new_counts=tuple(int(c) for c in next_counts),
        seed=seed,
        seconds=time.perf_counter() - t0,
        baseline_accuracy=base_acc,
        baseline_f1=base_f1,
        stop_reason=stop_reason,
    )
