"""Crash safety: SIGKILL a real subprocess in the middle of embedding, filtering and an
evaluation sweep, rerun, and get exactly what an uninterrupted run gives.

The subprocess (``trust_helpers/kill_driver.py``) pauses when it is about to rename a finished
temporary file into place and says so on stdout; the test then sends SIGKILL. So the kill always
lands at the same point of the work (no sleeps, no races), with a complete temporary file on
disk that a careless reader could pick up. After the kill we check that

* the killed job left only temporary files (``.tmp``) and never a half-written result,
* the reader refuses or ignores what is there (the partial file is never opened), and
* a rerun produces byte-identical results to an uninterrupted run on a copy of the same run.
"""

from __future__ import annotations

import builtins
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from trust_helpers import PARTIAL_SUFFIXES, partial_files, tree_digest

DRIVER = Path(__file__).resolve().parent / "trust_helpers" / "kill_driver.py"
PAUSE_TIMEOUT_S = 300  # generous: a loaded CI machine may take long to import torch


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: mnist_lenet, one epoch on 120 real digits."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("kill") / "run"
    train_run(out, data=DataSpec(name="digits", limit=120), model="mnist_lenet", epochs=1)
    return out


def kill_at(pattern: str, argv: list[str], *, log: Path) -> str:
    """Start ``kill_driver.py ARGV``, wait until it pauses before renaming onto a path matching
    ``pattern``, SIGKILL it; returns the path it was about to write."""
    env = {**os.environ, "THRESHER_TEST_PAUSE_AT": pattern, "THRESHER_PROGRESS": "0"}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(DRIVER), *argv], stdout=subprocess.PIPE, stderr=err, env=env
        )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], PAUSE_TIMEOUT_S)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("PAUSED"):
            proc.kill()
            proc.wait()
            pytest.fail(f"the job never reached {pattern}: {log.read_text()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return line.split(" ", 1)[1].strip()


@pytest.fixture
def no_partial_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record every attempt of this process to open a temporary file for reading."""
    import pyarrow.parquet as pq

    seen: list[str] = []
    real_open, real_load, real_table = builtins.open, np.load, pq.read_table

    def check(path: object) -> None:
        name = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
        if name.endswith(PARTIAL_SUFFIXES):
            seen.append(name)

    def spy_open(file: object, mode: str = "r", *a: object, **k: object) -> object:
        if "r" in mode and "+" not in mode:
            check(file)
        return real_open(file, mode, *a, **k)  # type: ignore[call-overload]

    def spy_load(file: object, *a: object, **k: object) -> object:
        check(file)
        return real_load(file, *a, **k)  # type: ignore[arg-type]

    def spy_table(source: object, *a: object, **k: object) -> object:
        check(source)
        return real_table(source, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(np, "load", spy_load)
    monkeypatch.setattr(pq, "read_table", spy_table)
    yield seen
    assert seen == [], f"a partial file was read: {seen}"


def results(
    run: Path, *, skip: tuple[str, ...] = ("manifest.json", "cloud.html")
) -> dict[str, str]:
    """Digest of the run's result files; JSON files without their ``created`` time stamp.

    Excluded: temporary leftovers, the manifest (it holds a creation time; its steps are
    compared on their own) and the 3D view's HTML (plotly gives its ``<div>`` a random id on
    every write)."""
    import json

    out = {}
    for rel, digest in tree_digest(run).items():
        if rel.endswith(PARTIAL_SUFFIXES) or Path(rel).name in skip:
            continue
        if rel.endswith(".json"):
            digest = json.dumps(_untimed(json.loads((run / rel).read_text())), sort_keys=True)
        out[rel] = digest
    return out


TIMING_KEYS = frozenset({"created", "seconds", "train_seconds", "images_per_second"})


def _untimed(obj: object) -> object:
    """``obj`` without wall-clock entries (time stamps, durations): the only honest difference
    between two runs of the same job."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def manifest_steps(run: Path) -> dict[str, object]:
    from thresher.workflows.run import open_run

    return open_run(run).manifest["steps"]


# --- embedding extraction ---------------------------------------------------------------------
@pytest.mark.parametrize("point", ["values.npy", pytest.param("meta.json", marks=pytest.mark.slow)])
def test_killed_embedding_is_recomputed_not_half_reused(
    point: str, trained: Path, tmp_path: Path, no_partial_reads: list[str]
) -> None:
    from thresher.workflows.embed import embed_run
    from thresher.workflows.run import open_run

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(trained, reference)
    shutil.copytree(trained, killed)
    expected = embed_run(open_run(reference))

    kill_at(f"*/embeddings/*/{point}", ["embed", str(killed)], log=tmp_path / "log")
    leftovers = partial_files(killed)
    assert leftovers
    assert all(p.startswith("embeddings/") for p in leftovers)
    entries = list((killed / "embeddings").iterdir())
    assert all(not (e / "meta.json").exists() for e in entries)  # never marked complete

    again = embed_run(open_run(killed))
    np.testing.assert_array_equal(np.asarray(again.values), np.asarray(expected.values))
    np.testing.assert_array_equal(again.ids, expected.ids)
    assert results(killed) == results(reference)
    assert manifest_steps(killed) == manifest_steps(reference)


# --- filtering ----------------------------------------------------------------------------------
FILTER_ARGS = ["--outliers", "10", "--similar", "20", "--json"]


@pytest.mark.parametrize(
    "point", ["result.parquet", pytest.param("latest.json", marks=pytest.mark.slow)]
)
def test_killed_filter_leaves_no_result_then_reruns_identically(
    point: str, trained: Path, tmp_path: Path, cli: object, no_partial_reads: list[str]
) -> None:
    from thresher.errors import RunError
    from thresher.workflows.embed import embed_run
    from thresher.workflows.export import export_run
    from thresher.workflows.filter import FilterSettings, load_filter, run_filter
    from thresher.workflows.run import open_run

    embedded = tmp_path / "embedded"
    shutil.copytree(trained, embedded)
    embed_run(open_run(embedded))  # the kill is in the filter itself, not in the embedding
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(embedded, reference)
    shutil.copytree(embedded, killed)
    settings = FilterSettings(outliers=0.1, similar=0.2)
    run_filter(open_run(reference), settings)

    kill_at(f"*/filter/{point}" if point == "latest.json" else f"*/{point}",
            ["cli", "filter", str(killed), *FILTER_ARGS], log=tmp_path / "log")  # fmt: skip
    assert partial_files(killed)
    # The newest-filter pointer was never written: readers refuse cleanly, never guess.
    assert not (killed / "filter" / "latest.json").exists()
    with pytest.raises(RunError, match="no filter result"):
        load_filter(open_run(killed))
    with pytest.raises(RunError, match="no filter result"):
        export_run(open_run(killed), fmt="txt", out=tmp_path / "kept.txt")
    assert not (tmp_path / "kept.txt").exists()

    run_filter(open_run(killed), settings)
    assert results(killed) == results(reference)
    assert manifest_steps(killed) == manifest_steps(reference)


# --- an evaluation sweep --------------------------------------------------------------------------
def test_killed_compare_sweep_resumes_from_finished_cells(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_partial_reads: list[str]
) -> None:
    import thresher.workflows.compare as run_filter_module
    from thresher.workflows.compare import compare_run
    from thresher.workflows.run import open_run

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(trained, reference)
    shutil.copytree(trained, killed)
    sweep = {"methods": ("random",), "keeps": (0.5,), "seeds": 2, "epochs": 1}
    expected = compare_run(open_run(reference), **sweep)  # type: ignore[arg-type]

    # Killed while storing the second evaluation: the first ("full") is finished and stored.
    kill_at("*/compare/random-keep50.json", ["compare", str(killed)], log=tmp_path / "log")
    assert (killed / "compare" / "full.json").is_file()
    assert not (killed / "compare" / "random-keep50.json").exists()
    finished = (killed / "compare" / "full.json").read_bytes()

    evaluated: list[str] = []
    real = run_filter_module.evaluate_run

    def counting(*args: object, **kwargs: object) -> object:
        evaluated.append(str(kwargs["name"]))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(run_filter_module, "evaluate_run", counting)
    again = compare_run(open_run(killed), **sweep)  # type: ignore[arg-type]
    assert evaluated == ["random-keep50"]  # the finished cell is reused, not retrained
    assert (killed / "compare" / "full.json").read_bytes() == finished
    assert again.to_dict() == expected.to_dict()
    # evaluate/*.parquet hold per-seed training times; everything else matches byte for byte
    assert {k: v for k, v in results(killed).items() if not k.endswith(".parquet")} == {
        k: v for k, v in results(reference).items() if not k.endswith(".parquet")
    }


# --- a long evaluation ------------------------------------------------------------------------
def test_killed_evaluation_resumes_at_the_first_missing_seed(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_partial_reads: list[str]
) -> None:
    import thresher.evaluate as evaluate_module
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import open_run

    reference, killed = tmp_path / "reference", tmp_path / "killed"
    shutil.copytree(trained, reference)
    shutil.copytree(trained, killed)
    expected = evaluate_run(open_run(reference), subset_ids=None, seeds=3, epochs=1, name="T")

    # Killed while storing seed 1: seed 0 is finished and stored, seed 2 never started.
    kill_at("*/sweep/T/seed-1.json", ["evaluate", str(killed)], log=tmp_path / "log")
    assert (killed / "sweep" / "T" / "seed-0.json").is_file()
    assert not (killed / "sweep" / "T" / "seed-1.json").exists()
    assert not (killed / "evaluate" / "T.json").exists()

    trained_seeds: list[list[int]] = []
    real = evaluate_module.evaluate

    def counting(*args: object, **kwargs: object) -> object:
        trained_seeds.append(list(kwargs["seeds"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate_module, "evaluate", counting)
    again = evaluate_run(open_run(killed), subset_ids=None, seeds=3, epochs=1, name="T")
    assert trained_seeds == [[1], [2]]  # seed 0 reused, not retrained
    assert again.seeds == (0, 1, 2)
    np.testing.assert_array_equal(again.accuracy, expected.accuracy)
    np.testing.assert_array_equal(again.confusion, expected.confusion)

    # more seeds later: only the new one trains; another recipe (epochs) retrains all
    trained_seeds.clear()
    evaluate_run(open_run(killed), subset_ids=None, seeds=4, epochs=1, name="T")
    assert trained_seeds == [[3]]
    trained_seeds.clear()
    evaluate_run(open_run(killed), subset_ids=None, seeds=2, epochs=2, name="T")
    assert trained_seeds == [[0], [1]]
