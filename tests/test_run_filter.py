"""Filtering over a real run: filter, 3D view, export, compare, through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from thresher.store import read_ids

Cli = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mnist_lenet trained for one epoch on 400 real digits."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("runs") / "r"
    train_run(out, data=DataSpec(name="digits", limit=400), model="mnist_lenet", epochs=1)
    return out


def test_filter_removes_exact_counts_and_writes_the_view(cli: Cli, run_dir: Path) -> None:
    code, stdout, err = cli(
        ["filter", str(run_dir), "--outliers", "5", "--similar", "10", "--json"]
    )
    assert code == 0, err
    info = json.loads(stdout)
    assert info["counts"]["outlier"] == 20  # ceil(5% of 400)
    assert info["counts"]["kept"] == 340  # floor((1 - 0.05 - 0.10) x 400) clusters
    assert info["counts"]["similar"] == 40
    folder = Path(info["outputs"])
    for name in ("result.parquet", "params.json", "cloud.html", "cloud.png", "cloud3d.npy"):
        assert (folder / name).is_file(), name
    # the same request gives the same subset
    cli(["filter", str(run_dir), "--outliers", "5", "--similar", "10", "--json"])
    from thresher.workflows.filter import load_filter
    from thresher.workflows.run import open_run

    again = load_filter(open_run(run_dir))
    assert again.kept.sum() == 340
    code, stdout, _ = cli(["filter", str(run_dir), "--outliers", "5", "--similar", "10", "--json"])
    assert json.loads(stdout)["counts"] == info["counts"]


def test_near_duplicates_point_at_kept_items(run_dir: Path) -> None:
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import open_run

    res = run_filter(open_run(run_dir), FilterSettings(outliers=0.0, similar=0.2, per_class=True))
    kept = set(res.kept_ids.tolist())
    dups = res.reason == "similar"
    assert dups.sum() == 80
    assert set(res.representative_id[dups].tolist()) <= kept
    assert res.labels is not None
    label_of = dict(zip(res.ids.tolist(), res.labels.tolist(), strict=True))
    for sid, rep in zip(res.ids[dups], res.representative_id[dups], strict=True):
        assert label_of[sid] == label_of[rep]  # per-class: duplicates stay in their class


@pytest.mark.parametrize(
    ("fmt", "suffix"), [("txt", "txt"), ("csv", "csv"), ("json", "json"), ("parquet", "parquet")]
)
def test_export_lists(cli: Cli, run_dir: Path, tmp_path: Path, fmt: str, suffix: str) -> None:
    code, _, err = cli(["filter", str(run_dir), "--baseline", "random", "--keep", "75"])
    assert code == 0, err
    out = tmp_path / f"kept.{suffix}"
    code, stdout, err = cli(["export", str(run_dir), "--format", fmt, "--out", str(out), "--json"])
    assert code == 0, err
    assert json.loads(stdout)["count"] == 300
    assert len(read_ids(out)) == 300


def test_export_folder_writes_images_of_the_kept_set(
    cli: Cli, run_dir: Path, tmp_path: Path
) -> None:
    cli(["filter", str(run_dir), "--baseline", "uniqueness", "--keep", "50"])
    code, _, err = cli(
        ["export", str(run_dir), "--format", "folder", "--out", str(tmp_path / "imgs")]
    )
    assert code == 0, err
    pngs = list((tmp_path / "imgs").rglob("*.png"))
    assert len(pngs) == 200
    assert {p.parent.name for p in pngs} == {str(i) for i in range(10)}


def test_bad_filter_requests(cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    for args, fragment in [
        (["--outliers", "120"], "--outliers must be a percentage"),
        (["--outliers", "60", "--similar", "50"], "removes everything"),
        (["--baseline", "random"], "--keep"),
        (["--baseline", "coin", "--keep", "50"], "coin"),
        (["--method", "fastest"], "fastest"),
    ]:
        code, _, err = cli(["filter", str(run_dir), *args])
        assert code == 2, args
        assert fragment in " ".join(err.split()), err
    fresh = tmp_path / "fresh"
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    train_run(fresh, data=DataSpec(name="digits", limit=100), model="mnist_lenet", epochs=1)
    code, _, err = cli(["export", str(fresh), "--format", "txt", "--out", str(tmp_path / "x.txt")])
    assert code == 2
    assert "no filter result" in err


def test_compare_prints_a_table_and_reuses_results(cli: Cli, run_dir: Path) -> None:
    args = [
        "compare",
        str(run_dir),
        "--methods",
        "random,similar",
        "--keep",
        "50",
        "--seeds",
        "2",
        "--epochs",
        "1",
    ]
    code, stdout, err = cli([*args, "--json"])
    assert code == 0, err
    table = json.loads(stdout)
    assert table["methods"] == ["random", "similar"]
    assert np.asarray(table["mean"]).shape == (1, 2)
    assert all(0.0 < v <= 1.0 for v in np.asarray(table["mean"]).ravel())
    # similar is compared with random at the same size, seed by seed
    similar = table["cells"]["similar-keep50"]
    random_acc = np.asarray(table["cells"]["random-keep50"]["accuracy"])
    diff = similar["versus_random"]
    assert diff["n"] == 2
    assert diff["mean"] == pytest.approx(float(np.mean(similar["accuracy"] - random_acc)))
    assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
    assert "versus_random" not in table["cells"]["random-keep50"]
    stored = sorted(p.name for p in (run_dir / "compare").iterdir())
    assert "random-keep50.json" in stored
    mtime = (run_dir / "compare" / "random-keep50.json").stat().st_mtime_ns
    code, stdout, _ = cli(args)
    assert code == 0
    assert "kept %" in stdout
    assert "p=" in stdout  # the paired difference to random is printed in the similar column
    assert (run_dir / "compare" / "random-keep50.json").stat().st_mtime_ns == mtime  # reused


def test_compare_with_the_scalable_filter_keeps_its_own_cells(cli: Cli, run_dir: Path) -> None:
    base = ["compare", str(run_dir), "--methods", "similar", "--keep", "80", "--seeds", "1"]
    base += ["--epochs", "1", "--json"]
    code, stdout, err = cli([*base, "--filter-method", "scalable"])
    assert code == 0, err
    scalable = json.loads(stdout)
    code, stdout, err = cli([*base, "--filter-method", "exact"])
    assert code == 0, err
    exact = json.loads(stdout)
    assert list(scalable["cells"]) == ["similar-keep80-scalable"]
    assert list(exact["cells"]) == ["similar-keep80-exact"]
    # both algorithms keep the same number of items, so the retrained subsets are comparable
    assert scalable["cells"]["similar-keep80-scalable"]["size"] == 320
    assert exact["cells"]["similar-keep80-exact"]["size"] == 320
    code, _, err = cli([*base, "--filter-method", "fastest"])
    assert code == 2
    assert "fastest" in err


def test_label_issues_through_the_cli_filter_and_compare(cli: Cli, run_dir: Path) -> None:
    code, _, err = cli(["filter", str(run_dir), "--outliers", "0", "--label-issues", "2"])
    assert code == 2
    assert "thresher labels" in err  # refused before anything is written
    code, stdout, err = cli(["labels", str(run_dir), "--folds", "2", "--epochs", "1", "--json"])
    assert code == 0, err
    info = json.loads(stdout)
    assert info["params"]["folds"] == 2
    assert len(info["top"]) == 10
    scores = [t["label_score"] for t in info["top"]]
    assert scores == sorted(scores, reverse=True)
    code, stdout, err = cli(
        ["filter", str(run_dir), "--outliers", "0", "--similar", "0", "--label-issues", "2",
         "--json"]
    )  # fmt: skip
    assert code == 0, err
    res = json.loads(stdout)
    assert res["counts"]["label"] == 8  # ceil(2% of 400)
    # the eight highest label scores are what went (ties aside, the top list is that order)
    assert {t["id"] for t in info["top"][:8]} == _removed_ids(Path(res["outputs"]))
    code, stdout, err = cli(
        ["compare", str(run_dir), "--methods", "random,labels", "--keep", "95", "--seeds", "1",
         "--epochs", "1", "--json"]
    )  # fmt: skip
    assert code == 0, err
    table = json.loads(stdout)
    assert table["methods"] == ["random", "labels"]
    code, _, err = cli(["labels", str(run_dir), "--folds", "1"])
    assert code == 2
    assert "--folds must be >= 2" in err


def _removed_ids(folder: Path) -> set[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(folder / "result.parquet")
    kept = table.column("kept").to_pylist()
    return {i for i, k in zip(table.column("id").to_pylist(), kept, strict=True) if not k}


def test_filter_tags_differ_whenever_the_settings_would_change_the_result() -> None:
    from thresher.workflows.filter import FilterSettings

    variants = [
        FilterSettings(),
        FilterSettings(per_class=True),
        FilterSettings(per_class=False),
        FilterSettings(preset="thesis"),
        FilterSettings(preset="thesis", per_class=True),
        FilterSettings(k=5),
        FilterSettings(normalise="none"),
        FilterSettings(copies=False),
        FilterSettings(label_issues=0.02),
    ]
    tags = [v.tag() for v in variants]
    assert len(set(tags)) == len(tags), tags
    assert FilterSettings().tag() == "o5-s5-pca128-auto-auto-auto-seed0"


def test_unknown_preset_or_normalisation_is_refused_before_anything_runs(
    cli: Cli, run_dir: Path
) -> None:
    before = (
        sorted(p.name for p in (run_dir / "filter").iterdir())
        if (run_dir / "filter").exists()
        else []
    )
    code, _, err = cli(["filter", str(run_dir), "--preset", "thesys"])
    assert code == 2
    assert "unknown filter preset 'thesys' (valid: default, thesis)" in err
    code, _, err = cli(["filter", str(run_dir), "--normalise", "l1"])
    assert code == 2
    assert "unknown normalise 'l1' (valid: l2, none)" in err
    code, _, err = cli(["filter", str(run_dir), "--k", "0"])
    assert code == 2
    assert "k (outlier-score neighbours) must be >= 1" in err
    after = (
        sorted(p.name for p in (run_dir / "filter").iterdir())
        if (run_dir / "filter").exists()
        else []
    )
    assert after == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--keep", "90,90"], "kept percentage 90 twice"),
        (["--methods", "random,random"], "method random twice"),
        (["--seeds", "0"], "--seeds must be an integer >= 1"),
        (["--precision", "fp16"], "fp16 training needs a CUDA GPU"),
        (["--precision", "half"], "unknown precision 'half'"),
    ],
)
def test_compare_refuses_bad_requests_before_writing_anything(
    cli: Cli, tmp_path: Path, run_dir: Path, extra: list[str], message: str
) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("compare", "filter*"))
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    args = ["compare", str(run), "--methods", "random,similar", "--keep", "90", *extra]
    code, _, err = cli(args)
    assert code != 0
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # nothing written


def test_evaluate_precision_override_is_used_and_cached_apart(run_dir: Path) -> None:
    from thresher.workflows.compare import _cached_evaluation
    from thresher.workflows.run import open_run, run_recipe

    run = open_run(run_dir)
    assert run_recipe(run, precision="fp32").precision == "fp32"
    assert run_recipe(run, epochs=3).epochs == 3
    ids = np.asarray(run_dataset_ids(run))[:200]
    a = _cached_evaluation(run, "p-fp32", ids, seeds=1, epochs=1, device=None, precision="fp32")
    b = _cached_evaluation(run, "p-fp32", ids, seeds=1, epochs=1, device=None, precision="fp32")
    assert a == b  # reused
    stored = json.loads((run_dir / "compare" / "p-fp32.json").read_text())
    assert stored["key"]["precision"] == "fp32"
    assert stored["result"]["recipe"]["precision"] == "fp32"


def run_dataset_ids(run: object) -> np.ndarray:
    from thresher.workflows.run import run_dataset

    return run_dataset(run, "train").ids  # type: ignore[arg-type]


# --- curation: tags from the shell, applied on export and in compare --------------------------
def test_tag_export_and_compare_the_curated_set(cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    from thresher.workflows.filter import load_filter
    from thresher.workflows.run import open_run

    code, _, err = cli(["filter", str(run_dir), "--outliers", "5", "--similar", "10", "--json"])
    assert code == 0, err
    res = load_filter(open_run(run_dir))
    kept = [str(i) for i in res.ids[res.kept]]
    dropped = [str(i) for i in res.ids[~res.kept]]
    ids_file = tmp_path / "bad.txt"
    ids_file.write_text("\n".join(kept[:4]) + "\n")
    try:
        code, _, err = cli(["tag", str(run_dir), "--ids", str(ids_file), "--add", "remove"])
        assert code == 0, err
        code, _, err = cli(["tag", str(run_dir), "--id", dropped[0], "--add", "keep",
                            "--add", "looks fine"])  # fmt: skip
        assert code == 0, err
        code, out, err = cli(["tag", str(run_dir), "--json"])
        listing = json.loads(out)
        assert listing["counts"] == {"remove": 4, "keep": 1, "looks fine": 1}
        # bad requests: an unknown id, a bad tag, tags without ids; nothing changes
        for args, needle in (
            (["--id", "digits/none", "--add", "keep"], "not in the run's training split"),
            (["--id", kept[0], "--add", "a;b"], "bad tag"),
            (["--add", "keep"], "need images"),
            (["--id", kept[0], "--add", "keep", "--add", "remove"], "not both"),
        ):
            code, _, err = cli(["tag", str(run_dir), *args])
            assert code == 2, (args, err)
            assert needle in " ".join(err.split()), (args, err)
        code, out, _ = cli(["tag", str(run_dir), "--json"])
        assert json.loads(out) == listing
        # export applies the verdicts, --ignore-tags does not
        out_file = tmp_path / "kept.txt"
        code, out, err = cli(["export", str(run_dir), "--format", "txt", "--out", str(out_file)])
        assert code == 0, err
        assert "your tags removed 4 and put back 1" in " ".join(out.split())
        exported = read_ids(out_file).tolist()
        assert exported == sorted(set(kept[4:]) | {dropped[0]}, key=list(res.ids).index)
        raw = tmp_path / "raw.txt"
        code, _, err = cli(["export", str(run_dir), "--format", "txt", "--out", str(raw),
                            "--ignore-tags"])  # fmt: skip
        assert code == 0, err
        assert read_ids(raw).tolist() == kept
        # compare retrains the curated set beside a random one with the same class counts
        code, out, err = cli(["compare", str(run_dir), "--subset", "curated", "--seeds", "2",
                              "--epochs", "1", "--json"])  # fmt: skip
        assert code == 0, err
        table = json.loads(out)
        assert table["methods"] == []
        cell = table["subsets"]["curated"]
        assert cell["size"] == len(exported)
        assert len(cell["accuracy"]) == len(cell["random_accuracy"]) == 2
        diff = cell["versus_random"]
        paired = np.asarray(cell["accuracy"]) - np.asarray(cell["random_accuracy"])
        assert diff["mean"] == pytest.approx(float(paired.mean()))
        code, out, _ = cli(["compare", str(run_dir), "--subset", "curated", "--seeds", "2",
                            "--epochs", "1"])  # fmt: skip
        assert code == 0
        assert "your subsets" in " ".join(out.split())
        assert "curated" in out
        code, _, err = cli(["compare", str(run_dir), "--subset", str(tmp_path / "none.txt")])
        assert code == 2
        assert "no such id file" in err
    finally:
        (run_dir / "curation" / "tags.json").unlink(missing_ok=True)
