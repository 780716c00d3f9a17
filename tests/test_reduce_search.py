"""LRP-GUS search bookkeeping on a mocked scorer: actions, constraint, class choice, stops,
resume, bad input; cutoff rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from thresher.errors import ConfigError, DataError, RunError
from thresher.lrp_gus import (
    DirCheckpoint,
    Score,
    SearchSettings,
    balanced_counts,
    balanced_positions,
    choose_cutoff,
    knee_iteration,
    parse_rule,
    propose,
    run_search,
)
from thresher.lrp_gus.search import IterationRecord, SearchTrace

LABELS = np.repeat(np.arange(4), 100)  # T: 4 classes x 100 images


class FakeScorer:
    """f_j = -difficulty_j / count_j (harder classes and smaller classes score lower);
    accuracy = subset size / 400. Records every call."""

    def __init__(self, difficulty: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)) -> None:
        self.difficulty = np.asarray(difficulty)
        self.calls: list[tuple[np.ndarray, int, bool]] = []

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        self.calls.append((positions.copy(), seed, relevance))
        counts = np.bincount(LABELS[positions], minlength=4)
        f = -self.difficulty / counts if relevance else None
        return Score(accuracy=len(positions) / 400, f1=counts / 100, f=f)


def settings(**kw: object) -> SearchSettings:
    base: dict[str, object] = {"p0": 20, "iterations": 10, "baseline": False}
    base.update(kw)
    return SearchSettings(**base)  # type: ignore[arg-type]


def search(s: SearchSettings, scorer: object | None = None, **kw: object) -> SearchTrace:
    return run_search(LABELS, num_classes=4, settings=s, scorer=scorer or FakeScorer(), **kw)  # type: ignore[arg-type]


# --- one step ------------------------------------------------------------------------------------
def test_propose_shrinks_rising_classes_and_grows_the_others() -> None:
    counts = np.array([100, 100, 100, 100])
    delta = np.array([0.5, -0.1, 0.0, 0.2])
    new, shrink, allowed = propose(
        counts, delta, available=np.full(4, 1000), settings=settings(up=0.05, down=0.2)
    )
    assert shrink.tolist() == [True, False, False, True]
    assert new.tolist() == [80, 105, 105, 80]
    assert allowed.all()


def test_lower_constraint_blocks_a_shrink_below_the_mean_band_also_blocks_growth() -> None:
    counts = np.array([60, 100, 100, 140])
    delta = np.array([1.0, 1.0, -1.0, -1.0])
    # shrinks: 60 -> 48, mean' = 97 -> 0.6 * 97 = 58.2 > 48: blocked; 100 -> 80 >= 0.6 * 95: ok
    # grows: 140 -> 147, mean' = 101.75 -> band top 142.45 < 147: blocked only in "band"
    kw = {"available": np.full(4, 1000)}
    _, _, lower = propose(counts, delta, settings=settings(lim=0.4, constraint="lower"), **kw)
    _, _, band = propose(counts, delta, settings=settings(lim=0.4, constraint="band"), **kw)
    assert lower.tolist() == [False, True, True, True]
    assert band.tolist() == [False, True, True, False]


def test_growth_needs_images_left_in_t() -> None:
    _, _, allowed = propose(
        np.array([100, 50]),
        np.array([-1.0, -1.0]),
        available=np.array([100, 200]),
        settings=settings(),
    )
    assert allowed.tolist() == [False, True]


def test_small_counts_still_grow_by_at_least_one_image() -> None:
    new, _, _ = propose(
        np.array([3, 3]), np.array([-1.0, -1.0]), available=np.array([9, 9]), settings=settings()
    )
    assert new.tolist() == [4, 4]


# --- the loop --------------------------------------------------------------------------------------
def test_first_iteration_grows_the_class_with_the_most_negative_score() -> None:
    trace = search(settings(iterations=1))
    rec = trace.records[0]
    assert rec.counts == (20, 20, 20, 20)
    assert rec.delta_f == rec.f  # f_{-1} = 0
    assert rec.chosen == 3
    assert rec.action == "grow"
    assert rec.new_counts == (20, 20, 20, 21)
    assert rec.size == 80
    assert rec.compression == pytest.approx(0.8)
    assert trace.stop_reason == "nmax"


def test_each_iteration_applies_the_chosen_action_to_the_next_counts() -> None:
    trace = search(settings(iterations=8, lim=0.4))
    for prev, nxt in zip(trace.records, trace.records[1:], strict=False):
        assert nxt.counts == prev.new_counts
        j = prev.chosen
        if prev.action == "shrink":
            assert prev.delta_f[j] > 0
            assert nxt.counts[j] == math.floor(prev.counts[j] * 0.8)
        else:
            assert prev.delta_f[j] <= 0
            assert nxt.counts[j] == max(math.floor(prev.counts[j] * 1.05), prev.counts[j] + 1)
        others = [c for c in range(4) if c != j]
        assert [nxt.counts[c] for c in others] == [prev.counts[c] for c in others]


def test_chosen_class_has_the_largest_abs_delta_among_allowed_ones() -> None:
    trace = search(settings(iterations=12))
    for rec in trace.records:
        allowed = np.array(rec.allowed)
        mags = np.where(allowed, np.abs(rec.delta_f), -np.inf)
        assert rec.chosen == int(np.argmax(mags))
    assert any(not all(r.allowed) for r in trace.records)  # the constraint did act


def test_other_choice_rules_by_name() -> None:
    rec = search(settings(iterations=2, choice="max_delta")).records[1]
    assert rec.chosen == int(np.argmax(np.where(rec.allowed, rec.delta_f, -np.inf)))
    with pytest.raises(ConfigError, match=r"unknown class choice 'biggest'.*max_abs_delta"):
        settings(choice="biggest")


def test_stop_when_no_class_may_act() -> None:
    # band with lim = 0: every action moves a class off the mean -> nothing allowed
    trace = search(settings(lim=0.0, constraint="band"))
    assert len(trace.records) == 1
    assert trace.records[0].action == "stop"
    assert trace.records[0].chosen == -1
    assert trace.stop_reason == "no_class_may_act"


class RisingScorer(FakeScorer):
    """Class 0's score rises by 1 per call from -10; the others stay 0."""

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        score = super().__call__(positions, seed=seed, relevance=relevance)
        f = np.zeros(4)
        f[0] = -10.0 + len(self.calls)
        return Score(accuracy=score.accuracy, f1=score.f1, f=f)


def test_stop_when_a_class_count_reaches_zero() -> None:
    # lim = 1 lets a class shrink to nothing: class 0 grows 2 -> 3 (delta -9), then shrinks
    # 3 -> 1 -> 0 (delta +1 each) and the search stops before training on an empty class
    scorer = RisingScorer()
    trace = search(settings(p0=2, down=0.5, lim=1.0, iterations=50), scorer)
    assert [r.counts[0] for r in trace.records] == [2, 3, 1]
    assert [r.action for r in trace.records] == ["grow", "shrink", "shrink"]
    assert trace.records[-1].new_counts[0] == 0
    assert trace.stop_reason == "class_count_zero"
    assert len(scorer.calls) == 3


def test_nmax_stops_after_exactly_that_many_iterations() -> None:
    scorer = FakeScorer()
    trace = search(settings(iterations=5), scorer)
    assert len(trace.records) == 5
    assert trace.stop_reason == "nmax"
    assert [r.iteration for r in trace.records] == list(range(5))


def test_baseline_is_a_balanced_subset_of_the_same_size_scored_without_relevance() -> None:
    scorer = FakeScorer()
    trace = search(settings(iterations=3, baseline=True), scorer)
    assert len(scorer.calls) == 6
    for rec, (pos, seed, rel) in zip(trace.records, scorer.calls[1::2], strict=True):
        assert not rel
        assert seed != rec.seed
        assert len(pos) == rec.size
        counts = np.bincount(LABELS[pos], minlength=4)
        assert counts.max() - counts.min() <= 1
        assert rec.baseline_accuracy == pytest.approx(rec.size / 400)


def test_subsets_are_nested_and_seeded() -> None:
    scorer = FakeScorer()
    search(settings(iterations=4), scorer)
    first, second = scorer.calls[0][0], scorer.calls[1][0]
    assert set(first) <= set(second)  # iteration 0 grew one class
    again = FakeScorer()
    search(settings(iterations=4), again)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(scorer.calls, again.calls, strict=True))
    other = FakeScorer()
    search(settings(iterations=1, seed=1), other)
    assert not np.array_equal(other.calls[0][0], scorer.calls[0][0])


def test_balanced_helpers() -> None:
    assert balanced_counts(10, np.array([100, 100, 100])).tolist() == [4, 3, 3]
    assert balanced_counts(10, np.array([1, 100, 100])).tolist() == [1, 5, 4]
    pos = balanced_positions(LABELS, 10, seed=0)
    assert len(pos) == 10
    assert len(set(pos)) == 10


# --- resume ----------------------------------------------------------------------------------------
class KilledScorer(FakeScorer):
    def __init__(self, die_at_call: int) -> None:
        super().__init__()
        self.die_at_call = die_at_call

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        if len(self.calls) == self.die_at_call:
            raise KeyboardInterrupt("killed")
        return super().__call__(positions, seed=seed, relevance=relevance)


def comparable(trace: SearchTrace) -> list[dict[str, object]]:
    return [{k: v for k, v in r.to_dict().items() if k != "seconds"} for r in trace.records]


def test_resume_after_a_kill_gives_the_identical_trace(tmp_path: Path) -> None:
    s = settings(iterations=9, baseline=True, sampling="fresh")
    whole = search(s)
    ckpt = DirCheckpoint(tmp_path / "reduce", settings=s, context={"data": "x"})
    with pytest.raises(KeyboardInterrupt):
        search(s, KilledScorer(die_at_call=9), checkpoint=ckpt)  # dies in iteration 4
    stored = ckpt.load()
    assert stored is not None
    assert stored[0].next_iteration == 4
    resumed_scorer = FakeScorer()
    resumed = search(s, resumed_scorer, checkpoint=ckpt)
    assert comparable(resumed) == comparable(whole)
    assert len(resumed_scorer.calls) == 2 * (9 - 4)  # only the missing iterations ran
    assert resumed.stop_reason == "nmax"
    # a finished search continues when asked for more iterations
    longer = SearchSettings(**{**s.to_dict(), "iterations": 11})
    more = search(
        longer,
        checkpoint=DirCheckpoint(tmp_path / "reduce", settings=longer, context={"data": "x"}),
    )
    assert comparable(more)[:9] == comparable(whole)
    assert len(more.records) == 11


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    s = settings(iterations=2)
    search(s, checkpoint=DirCheckpoint(tmp_path, settings=s))
    other = settings(iterations=2, up=0.1)
    with pytest.raises(RunError, match=r"other settings \(up\)"):
        search(other, checkpoint=DirCheckpoint(tmp_path, settings=other))


# --- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"up": 0.0}, "up must be a fraction in"),
        ({"down": 1.0}, "down must be a fraction in"),
        ({"down": -0.1}, "down must be a fraction in"),
        ({"lim": 1.5}, "lim must be a fraction in"),
        ({"iterations": 0}, r"iterations \(Nmax\) must be >= 1"),
        ({"p0": 0}, "p0 must be >= 1"),
        ({"constraint": "upper"}, "constraint must be 'lower' or 'band'"),
    ],
)
def test_bad_settings_are_refused_with_a_message(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings(**kw)


def test_p0_larger_than_a_class_is_refused() -> None:
    labels = np.concatenate([np.zeros(50), np.ones(10)]).astype(np.int64)
    with pytest.raises(ConfigError, match=r"p0 = 20 is larger than class 'b' \(10 images"):
        run_search(
            labels, num_classes=2, settings=settings(), scorer=FakeScorer(), classes=("a", "b")
        )


def test_a_class_missing_from_t_is_refused() -> None:
    labels = np.concatenate([np.zeros(50), np.full(50, 2)]).astype(np.int64)
    with pytest.raises(DataError, match="class 'cat' has no image in T"):
        run_search(
            labels,
            num_classes=3,
            settings=settings(),
            scorer=FakeScorer(),
            classes=("dog", "cat", "cow"),
        )


def test_p0_per_class_must_match_the_classes() -> None:
    with pytest.raises(ConfigError, match="p0 gives 3 counts but T has 4 classes"):
        search(settings(p0=(5, 5, 5)))


# --- cutoff ---------------------------------------------------------------------------------------
def fake_trace(acc: list[float], comp: list[float]) -> SearchTrace:
    recs = [
        IterationRecord(
            iteration=i,
            counts=(10 - i, 10),
            size=20 - i,
            compression=c,
            accuracy=a,
            f1=(a, a),
            f=(0.0, 0.0),
            delta_f=(0.0, 0.0),
            allowed=(True, True),
            chosen=0,
            action="shrink",
            new_counts=(9 - i, 10),
            seed=i,
            seconds=0.0,
        )
        for i, (a, c) in enumerate(zip(acc, comp, strict=True))
    ]
    return SearchTrace(
        settings=settings(), class_sizes=(50, 50), records=tuple(recs), stop_reason="nmax"
    )


def test_drop_cutoff_is_the_last_iteration_before_the_first_crossing() -> None:
    trace = fake_trace([0.99, 0.985, 0.97, 0.95, 0.97, 0.90], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    cut = choose_cutoff(trace, "drop:0.03", reference_accuracy=0.99)
    assert cut.iteration == 2
    assert cut.threshold == pytest.approx(0.96)
    assert cut.counts == (8, 10)
    assert cut.compression == 0.3
    never = choose_cutoff(trace, "drop:0.5", reference_accuracy=0.99)
    assert never.iteration == 5
    with pytest.raises(ConfigError, match="needs the full-T model's accuracy"):
        choose_cutoff(trace, "drop:0.03")


def test_knee_cutoff_finds_the_regime_shift() -> None:
    comp = np.linspace(0, 0.99, 100)
    acc = np.where(comp < 0.8, 0.99 - 0.01 * comp, 0.982 - 3.0 * (comp - 0.8))
    assert abs(comp[knee_iteration(comp, acc, window=1)] - 0.8) < 0.03
    trace = fake_trace(list(acc[:10]), list(comp[:10]))
    assert choose_cutoff(trace, "knee").rule == "knee"


def test_cutoff_rule_parsing() -> None:
    assert parse_rule("drop:0.05") == ("drop", 0.05)
    assert parse_rule("drop") == ("drop", 0.03)
    with pytest.raises(ConfigError, match="unknown cutoff 'elbow'"):
        parse_rule("elbow")
    with pytest.raises(ConfigError, match="needs a number"):
        parse_rule("drop:x")


KILL_SCRIPT = """
import sys, time
import numpy as np
sys.path.insert(0, {tests!r})
from test_reduce_search import FakeScorer, LABELS, settings
from thresher.lrp_gus import DirCheckpoint, run_search

class Slow(FakeScorer):
    def __call__(self, positions, *, seed, relevance):
        time.sleep(0.3)
        return super().__call__(positions, seed=seed, relevance=relevance)

s = settings(iterations=40, baseline=True)
run_search(LABELS, num_classes=4, settings=s, scorer=Slow(),
           checkpoint=DirCheckpoint({path!r}, settings=s))
"""


def test_resume_after_sigkill_gives_the_identical_trace(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    ckpt_dir = tmp_path / "reduce"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), path=str(ckpt_dir))
    proc = subprocess.Popen([sys.executable, "-c", script])
    s = settings(iterations=40, baseline=True)
    ckpt = DirCheckpoint(ckpt_dir, settings=s)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            stored = ckpt.load() if ckpt.exists else None
            if stored is not None and stored[0].next_iteration >= 3:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    stored = ckpt.load()
    assert stored is not None
    assert 3 <= stored[0].next_iteration < 40
    resumed = search(s, checkpoint=ckpt)
    assert comparable(resumed) == comparable(search(s))


def test_drop_cutoff_says_when_no_iteration_meets_the_rule() -> None:
    below = choose_cutoff(fake_trace([0.80, 0.79, 0.70], [0.1, 0.2, 0.3]), reference_accuracy=0.95)
    assert below.iteration == 0
    assert below.met is False  # 0.80 < 0.95 - 0.03: not a valid cutoff, and flagged as such
    ok = choose_cutoff(fake_trace([0.95, 0.93, 0.90], [0.1, 0.2, 0.3]), reference_accuracy=0.95)
    assert (ok.iteration, ok.met) == (1, True)
