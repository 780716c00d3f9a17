"""``reduce_run`` over a run directory with a mocked scorer: files, cutoff ids, resume rules."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thresher.errors import ConfigError, RunError
from thresher.lrp_gus import Score, SearchSettings
from thresher.store import Run, read_ids
from thresher.train import Recipe
from thresher.workflows.reduce import (
    ReduceSettings,
    load_reduction,
    load_trace,
    reduce_run,
    search_pool,
)
from thresher.workflows.run import DataSpec, open_run, run_dataset

CLASSES = ("ant", "bee", "cat")


def image_folder(root: Path, per_class: int = 30) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 5)):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (12, 12), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i:03d}.png")
    return root


def make_run(tmp_path: Path) -> Run:
    data = image_folder(tmp_path / "data")
    return Run.create(
        tmp_path / "run",
        config={
            "data": asdict(DataSpec(name=str(data)).resolved()),
            "model": {"name": "mnist_lenet", "num_classes": 3, "in_channels": 1},
            "classes": list(CLASSES),
            "recipe": Recipe(name="paper-mnist").to_dict(),
            "seed": 0,
        },
    )


class CountScorer:
    """f_j = -(j + 1) / count_j; accuracy falls as the subset shrinks."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels
        self.calls = 0

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        self.calls += 1
        counts = np.bincount(self.labels[positions], minlength=3)
        f = -np.arange(1, 4) / counts if relevance else None
        return Score(accuracy=len(positions) / len(self.labels), f1=np.full(3, 0.5), f=f)


def test_reduce_run_stores_trace_cutoff_and_ids(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    settings = ReduceSettings(search=SearchSettings(p0=20, iterations=6, lim=0.4))
    train = run_dataset(run, "train")

    t, val, _pool = search_pool(run, settings)
    assert len(t) + len(val) == len(train) == 90
    assert len(np.intersect1d(t.ids, val.ids)) == 0
    pool_labels = t.labels
    scorer = CountScorer(pool_labels)
    res = reduce_run(run, settings, scorer=scorer)
    assert len(res.trace.records) == 6
    assert scorer.calls == 1 + 2 * 6  # the full-T reference, then model + baseline per iteration
    assert res.reference_accuracy == 1.0
    # accuracy = size / |T|: the drop rule keeps iterations with size >= 0.97 |T|: none here
    # after iteration 0 (60 of 81 images), so i_c = 0
    assert res.cutoff.rule == "drop:0.03"
    assert res.cutoff.iteration == 0
    ids = read_ids(run.file("reduce/cutoff_ids.txt"))
    assert len(ids) == res.cutoff.size == 60
    assert set(ids) <= set(t.ids)
    counts = np.bincount(t.labels[np.isin(t.ids, ids)], minlength=3)
    assert tuple(counts) == res.cutoff.counts
    stored = load_reduction(run)
    assert set(stored["cutoffs"]) == {"drop", "knee"}
    trace = load_trace(run)
    assert [r.to_dict() for r in trace.records] == [r.to_dict() for r in res.trace.records]
    assert trace.class_sizes == res.trace.class_sizes
    assert "reduce" in open_run(run.path).manifest["steps"]

    with pytest.raises(RunError, match="--resume to continue it or --restart"):
        reduce_run(run, settings, scorer=CountScorer(pool_labels))
    again = CountScorer(pool_labels)
    resumed = reduce_run(run, settings, resume=True, scorer=again)
    assert again.calls == 0  # finished and reference reused: nothing retrained
    assert resumed.cutoff == res.cutoff
    # the search's time survives the resume; "seconds" is only what this call took
    total = sum(r.seconds for r in res.trace.records)
    assert resumed.to_dict()["search_seconds"] == pytest.approx(total)
    assert open_run(run.path).manifest["steps"]["reduce"]["search_seconds"] == pytest.approx(total)
    other = ReduceSettings(search=SearchSettings(p0=20, iterations=6, lim=0.3))
    with pytest.raises(RunError, match=r"other settings \(lim\)"):
        reduce_run(run, other, resume=True, scorer=CountScorer(pool_labels))
    with pytest.raises(ConfigError, match="p0 = 50 is larger than class"):
        reduce_run(
            run,
            ReduceSettings(search=SearchSettings(p0=50)),
            restart=True,
            scorer=CountScorer(pool_labels),
        )
    assert run.exists("reduce/state.json")  # the refused restart discarded nothing
    knee = reduce_run(
        run,
        ReduceSettings(search=SearchSettings(p0=20, iterations=6, lim=0.4), cutoff="knee"),
        restart=True,
        scorer=CountScorer(pool_labels),
    )
    assert knee.cutoff.rule == "knee"


def test_reduce_settings_refuse_bad_values() -> None:
    with pytest.raises(ConfigError, match="unknown cutoff"):
        ReduceSettings(cutoff="elbow")
    with pytest.raises(ConfigError, match="eval_on must be"):
        ReduceSettings(eval_on="train")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="val_fraction must be in"):
        ReduceSettings(val_fraction=1.0)


def test_stop_after_cutoff_ends_the_search_and_keeps_the_same_cutoff(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    search = SearchSettings(p0=20, iterations=8, lim=0.4)
    t, _, _ = search_pool(run, ReduceSettings(search=search))
    full = reduce_run(run, ReduceSettings(search=search), scorer=CountScorer(t.labels))
    # accuracy = size / |T| is below the 0.97 line from iteration 0 on (60 of 81): with
    # patience 2 the search stops after iterations 0, 1, 2
    early = ReduceSettings(search=search, stop_after_cutoff=2)
    scorer = CountScorer(t.labels)
    res = reduce_run(run, early, restart=True, scorer=scorer)
    assert len(res.trace.records) == 3
    assert res.trace.stop_reason == "past_cutoff"
    assert scorer.calls == 1 + 2 * 3
    assert res.cutoff == full.cutoff  # the tail cannot move T_c
    # more patience on resume continues the stored search instead of restarting it
    more = CountScorer(t.labels)
    longer = reduce_run(
        run, ReduceSettings(search=search, stop_after_cutoff=4), resume=True, scorer=more
    )
    assert len(longer.trace.records) == 5
    assert more.calls == 2 * 2  # two more iterations; the reference is reused
    assert [r.accuracy for r in longer.trace.records[:3]] == [r.accuracy for r in res.trace.records]


def test_stop_after_cutoff_refuses_bad_values() -> None:
    with pytest.raises(ConfigError, match="--stop-after-cutoff must be an integer >= 0"):
        ReduceSettings(stop_after_cutoff=-1)
    with pytest.raises(ConfigError, match="needs the drop cutoff"):
        ReduceSettings(cutoff="knee", stop_after_cutoff=3)


def test_reduction_sections_show_the_cutoff_figures_and_a_readable_trace(tmp_path: Path) -> None:
    """The app's Reduction view (and any report) draws the search from these sections."""
    from fastapi.testclient import TestClient

    from thresher.app.server import create_app
    from thresher.report.reduction import reduction_sections

    run = make_run(tmp_path)
    settings = ReduceSettings(search=SearchSettings(p0=20, iterations=6, lim=0.4))
    t, _val, _pool = search_pool(run, settings)
    res = reduce_run(run, settings, scorer=CountScorer(t.labels))
    found = reduction_sections(run)
    assert [s.id for s in found] == ["search", "figures", "trace"]
    summary = dict(tuple(row) for row in found[0].tables[0][1][1:])
    assert summary["iterations"] == "6"
    assert summary["state"] == "finished"
    assert summary["cutoff (drop:0.03)"] == f"iteration {res.cutoff.iteration}"
    assert summary["cutoff subset T_c (images)"] == str(res.cutoff.size)
    assert next(alt for alt, _ in found[1].figures).startswith("accuracy against compression")
    assert all(png[:4] == b"\x89PNG" for _, png in found[1].figures)
    rows = found[2].tables[0][1]
    assert rows[0] == ["iteration", "images", "r %", "accuracy %", "random balanced %",
                       "action", "class"]  # fmt: skip
    assert len(rows) == 1 + 6
    assert all(len(r) == 7 for r in rows)  # no per-class lists: the table stays narrow
    with TestClient(create_app(run.path)) as client:
        got = client.get("/api/sections?area=reduce").json()["sections"]
        assert [s["id"] for s in got] == ["search", "figures", "trace"]
        png = client.get("/api/sections/figure?area=reduce&section=figures&index=1")
        assert png.status_code == 200
        assert png.content[:4] == b"\x89PNG"
    run.file("reduce/cutoff.json").unlink()  # a search still running: the cutoff so far
    running = dict(tuple(row) for row in reduction_sections(run)[0].tables[0][1][1:])
    assert running["state"].startswith("in progress")
    assert "so far" in reduction_sections(run)[0].note
