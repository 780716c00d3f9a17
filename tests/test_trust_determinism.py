"""Determinism: the same seed gives byte-identical subsets in separate processes, and the
filter's counting invariants hold for any input (hypothesis property tests)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thresher.filter import filter_dataset, per_class_budgets, random_subset
from thresher.filter.budgets import ceil_count, floor_count, global_budget

# --- byte-identical subsets across processes ------------------------------------------------
SUBSETS = Path(__file__).resolve().parent / "trust_helpers" / "subsets.py"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: mnist_lenet, one epoch on 150 real digits."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("determinism") / "run"
    train_run(out, data=DataSpec(name="digits", limit=150), model="mnist_lenet", epochs=1)
    return out


def _subset_files(run: Path, exported: Path) -> dict[str, str]:
    files = sorted(run.glob("filter/*/result.parquet")) + sorted(exported.glob("kept.*"))
    return {f"{p.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_gives_byte_identical_subsets_in_separate_processes(
    trained: Path, tmp_path: Path
) -> None:
    from trust_helpers.subsets import write_subsets

    here, there = tmp_path / "here", tmp_path / "there"
    for d in (here, there):
        shutil.copytree(trained, d / "run")
        (d / "out").mkdir()
    subprocess.run(
        [sys.executable, str(SUBSETS), str(there / "run"), str(there / "out")],
        check=True,
        timeout=600,
        env={**os.environ, "THRESHER_PROGRESS": "0"},
    )
    write_subsets(here / "run", here / "out")
    files = _subset_files(here / "run", here / "out")
    assert len(files) == 6  # 3 filter results + 3 exported lists
    assert files == _subset_files(there / "run", there / "out")


# --- invariants, for any input ----------------------------------------------------------------
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def filter_requests(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(12, 60))
    d = draw(st.integers(1, 5))
    outliers = draw(st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.15, 0.29, 0.3]))
    similar = draw(st.sampled_from([0.0, 0.02, 0.05, 0.1, 0.2, 0.33, 0.5]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    if draw(st.booleans()):  # exact duplicates: the hard case for ties
        x[n // 2 :] = x[: n - n // 2]
    return {"x": x, "outliers": outliers, "similar": similar, "seed": seed}


def _filter(req: dict[str, object], **kw: object) -> object:
    return filter_dataset(
        req["x"],
        outliers=req["outliers"],
        similar=req["similar"],
        seed=req["seed"],
        projection="none",
        dims=None,
        outlier_score="knn",
        method="exact",
        **kw,
    )


@PROPERTY
@given(filter_requests())
def test_filter_removes_exactly_ceil_outliers_and_keeps_floor_clusters(
    req: dict[str, object],
) -> None:
    x = np.asarray(req["x"])
    n, o, s = x.shape[0], float(req["outliers"]), float(req["similar"])  # type: ignore[arg-type]
    res = _filter(req)
    reasons = np.asarray(res.reason)  # type: ignore[attr-defined]
    assert int((reasons == "outlier").sum()) == ceil_count(o * n)
    assert int(res.kept.sum()) == floor_count((1 - o - s) * n)  # type: ignore[attr-defined]
    assert int((reasons == "similar").sum()) == n - ceil_count(o * n) - floor_count((1 - o - s) * n)


@PROPERTY
@given(filter_requests())
def test_every_near_duplicate_points_at_a_kept_item(req: dict[str, object]) -> None:
    res = _filter(req)
    kept_ids = set(np.asarray(res.ids)[res.kept])  # type: ignore[attr-defined]
    similar = np.asarray(res.reason) == "similar"  # type: ignore[attr-defined]
    reps = np.asarray(res.representative_id)[similar]  # type: ignore[attr-defined]
    assert all(r in kept_ids for r in reps)
    assert all(r == "" for r in np.asarray(res.representative_id)[~similar])  # type: ignore[attr-defined]


@PROPERTY
@given(filter_requests(), st.integers(2, 4))
def test_per_class_budgets_sum_to_the_global_counts_and_are_met(
    req: dict[str, object], n_classes: int
) -> None:
    x = np.asarray(req["x"])
    n = x.shape[0]
    labels = np.random.default_rng(int(req["seed"])).integers(0, n_classes, n)  # type: ignore[call-overload]
    sizes = np.bincount(labels, minlength=n_classes)
    o, s = float(req["outliers"]), float(req["similar"])  # type: ignore[arg-type]
    whole = global_budget(n, outliers=o, similar=s)
    if whole.kept < int((sizes > 0).sum()):
        # Maybe fewer kept items than classes left after the outliers: refused, not guessed
        # (tests/test_filter_budgets.py checks the error).
        return
    budgets = per_class_budgets(sizes, outliers=o, similar=s)
    assert sum(b.outliers for b in budgets) == ceil_count(o * n)
    assert sum(b.kept for b in budgets) == floor_count((1 - o - s) * n)
    for b, size in zip(budgets, sizes, strict=True):
        assert b.n == size
        assert abs(b.outliers - o * size) < 1.0 + 1e-9  # within one item of its exact share
        assert b.kept >= 1 or b.remaining == 0  # a class that keeps anything keeps a cluster
    if any(b.outliers and b.n <= 10 for b in budgets):
        return  # a class too small for the outlier score's k=10 neighbours is refused
    res = _filter(req, labels=labels, per_class=True)
    reasons = np.asarray(res.reason)  # type: ignore[attr-defined]
    for c, b in enumerate(budgets):
        rows = labels == c
        assert int((reasons[rows] == "outlier").sum()) == b.outliers
        assert int(res.kept[rows].sum()) == b.kept  # type: ignore[attr-defined]


@PROPERTY
@given(filter_requests())
def test_a_single_class_per_class_equals_the_global_filter(req: dict[str, object]) -> None:
    n = np.asarray(req["x"]).shape[0]
    glob = _filter(req)
    one = _filter(req, labels=np.zeros(n, dtype=np.int64), per_class=True)
    np.testing.assert_array_equal(one.reason, glob.reason)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(one.representative_id, glob.representative_id)  # type: ignore[attr-defined]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 400),
    st.floats(0.0, 1.0, allow_nan=False),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_random_subset_has_the_promised_size_and_is_seeded(
    n: int, keep: float, seed: int, stratified: bool
) -> None:
    from thresher.errors import ConfigError

    ids = [f"s{i}" for i in range(n)]
    labels = np.arange(n) % 3
    expected = floor_count(keep * n)
    if expected < 1:
        with pytest.raises(ConfigError, match="keeps none"):
            random_subset(ids, keep=keep, seed=seed)
        return
    if stratified and expected < np.unique(labels).size:
        with pytest.raises(ConfigError, match="a class-aware budget cannot keep one of every"):
            random_subset(ids, keep=keep, seed=seed, labels=labels, stratified=stratified)
        return
    res = random_subset(ids, keep=keep, seed=seed, labels=labels, stratified=stratified)
    assert int(res.kept.sum()) == expected
    again = random_subset(ids, keep=keep, seed=seed, labels=labels, stratified=stratified)
    np.testing.assert_array_equal(res.kept, again.kept)
    if stratified:
        counts = np.bincount(labels[res.kept], minlength=3)
        sizes = np.bincount(labels, minlength=3)
        assert np.all(np.abs(counts - keep * sizes) < 1.0 + 1e-9)
