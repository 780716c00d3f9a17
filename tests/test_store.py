"""Run directories: manifest, atomic writes, tables, arrays, weights, id lists."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from thresher.errors import DataError, RunError
from thresher.store import Run, atomic_open, read_ids, write_ids


def test_manifest_records_schema_version_config_and_inputs(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "r", config={"model": "m"}, inputs={"train": "abc"})
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert manifest["config"] == {"model": "m"}
    assert manifest["inputs"] == {"train": "abc"}
    run.record_step("train", {"accuracy": 0.9})
    assert Run.open(tmp_path / "r").manifest["steps"]["train"] == {"accuracy": 0.9}


def test_create_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(RunError, match="not empty"):
        Run.create(tmp_path, config={})
    assert (tmp_path / "keep.txt").read_text() == "user data"


def test_open_refuses_non_run_and_other_schema(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a Thresher run"):
        Run.open(tmp_path)
    (tmp_path / "manifest.json").write_text('{"schema_version": 99}')
    with pytest.raises(RunError, match="schema 99"):
        Run.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="not JSON"):
        Run.open(tmp_path)


def test_step_records_go_through_one_api_and_survive_reopening(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "run", config={"model": "m"})
    assert run.steps() == []
    assert run.step("embed") == {}
    with pytest.raises(RunError, match=r"no trained model; run `thresher train` into it first"):
        run.require_step("train", command="thresher train", what="trained model")
    run.record_step("train", {"accuracy": np.float32(0.5)})  # numpy values are stored as JSON
    run.record_entries("embed", {"train:fc:flatten": {"shape": [3, 2]}})
    run.record_entries("embed", {"test:fc:flatten": {"shape": [1, 2]}})
    run.record_entries("embed", {"train:fc:flatten": {"shape": [4, 2]}})  # replaced, others kept
    copy = run.step("embed")
    copy["mutated"] = True  # a copy: the run's record is unchanged
    again = Run.open(tmp_path / "run")
    assert again.steps() == ["embed", "train"]
    assert again.has_step("train")
    assert not again.has_step("filter")
    assert again.step("train") == {"accuracy": 0.5}
    assert again.step("embed") == {
        "train:fc:flatten": {"shape": [4, 2]},
        "test:fc:flatten": {"shape": [1, 2]},
    }
    again.require_step("train", command="thresher train", what="trained model")


def test_arrays_and_tables_roundtrip(tmp_path: Path) -> None:
    run = Run.create(tmp_path, config={})
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    run.write_array("emb/values.npy", arr)
    back = run.read_array("emb/values.npy")
    assert isinstance(back, np.memmap)
    np.testing.assert_array_equal(back, arr)
    run.write_table("t.parquet", {"id": ["a", "b"], "score": [0.5, 1.0]})
    assert run.read_table("t.parquet").column("score").to_pylist() == [0.5, 1.0]


def test_missing_file_names_the_step(tmp_path: Path) -> None:
    run = Run.create(tmp_path, config={})
    with pytest.raises(RunError, match=r"no emb\.npy"):
        run.read_array("emb.npy")


def test_paths_may_not_leave_the_run(tmp_path: Path) -> None:
    run = Run.create(tmp_path / "r", config={})
    with pytest.raises(RunError, match="leaves the run"):
        run.write_json("../escape.json", {})
    assert not (tmp_path / "escape.json").exists()


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def write_then_fail() -> None:
        with atomic_open(target, "w") as fh:
            fh.write("half of the new")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        target = blocker / "sub" / "r"  # a path under a regular file cannot be created
    else:  # pragma: no cover - non-root CI
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "r"
    with pytest.raises(RunError, match=r"cannot write|choose"):
        Run.create(target, config={})


@pytest.mark.parametrize("fmt", ["txt", "csv", "json", "parquet"])
def test_id_lists_roundtrip_in_every_format(tmp_path: Path, fmt: str) -> None:
    ids = ["train/a/1.png", "train/b/2.png", "x,y"] if fmt != "txt" else ["a", "b", "c d"]
    path = write_ids(ids, tmp_path / f"ids.{fmt}")
    assert read_ids(path).tolist() == ids


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("e.txt", "", "lists no ids"),
        ("d.txt", "a\nb\na\n", "listed twice"),
        ("c.csv", "name\nx\n", "no 'id' column"),
        ("j.json", '{"other": 1}', "expected a JSON list"),
        ("j2.json", "[1, 2]", "expected a JSON list"),
        ("bad.xlsx", "a", "unknown id-list format"),
    ],
)
def test_bad_id_lists_are_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError, match=message):
        read_ids(p)


def test_missing_id_list(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_ids(tmp_path / "nope.txt")
