"""``thresher diagnose`` / ``thresher report``: bad input in a second, a real run end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from thresher.diagnose import archetypes, nearest_adversaries, top_features
from thresher.report.html import build_report, sections
from thresher.store import Run
from thresher.workflows.diagnose import load_result, save_result

Cli = Callable[[list[str]], tuple[int, str, str]]


def _fake_run(path: Path, *, trained: bool = True) -> Run:
    run = Run.create(
        path,
        config={"classes": ["a", "b", "c"], "model": {"name": "mnist_lenet"}, "recipe": {}},
    )
    if trained:
        run.record_step("train", {})
    return run


def test_unknown_analysis_is_refused_with_the_valid_names(tmp_path: Path, cli: Cli) -> None:
    _fake_run(tmp_path / "r")
    code, _, err = cli(["diagnose", str(tmp_path / "r"), "--only", "archetype"])
    assert code == 2
    assert "unknown analysis 'archetype'; did you mean 'archetypes'?" in err
    assert "accuracy, adversaries, archetypes, colours, density, top_features" in err


def test_unknown_nnb_weighting_is_refused_before_any_work(tmp_path: Path, cli: Cli) -> None:
    _fake_run(tmp_path / "r")
    code, _, err = cli(["diagnose", str(tmp_path / "r"), "--nnb-weighting", "prior"])
    assert code == 2
    assert "unknown --nnb-weighting 'prior'; use one of class-prior, paper" in err
    assert not (tmp_path / "r" / "diagnose").exists()


def test_separated_training_embeddings_warn_on_their_own_line(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # far-apart clusters stand in for a memorised training set: no K-NN pair crosses classes
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(100 * c, 1, (30, 4)) for c in range(3)]).astype(np.float32)
    y = np.repeat(np.arange(3), 30)
    res = nearest_adversaries(x, y, np.array([0, 1, 2, 1]), np.array([1, 0, 2, 1]), k=5)
    import thresher.workflows.diagnose as workflow

    monkeypatch.setattr(workflow, "diagnose_run", lambda run, **kw: {"adversaries": res})
    _fake_run(tmp_path / "r")
    code, out, err = cli(["diagnose", str(tmp_path / "r"), "--only", "adversaries"])
    assert code == 0
    assert "'weighting': 'class-prior'" in out
    assert "warning (adversaries): only 0.00% of the training K-NN pairs cross classes" in err


def test_untrained_run_and_empty_report(tmp_path: Path, cli: Cli) -> None:
    _fake_run(tmp_path / "r", trained=False)
    code, _, err = cli(["diagnose", str(tmp_path / "r")])
    assert code == 2
    assert "has no trained model; run `thresher train`" in err
    code, _, err = cli(["report", str(tmp_path / "r")])
    assert code == 2
    assert "has no diagnostics; run `thresher diagnose" in err


def test_report_works_with_whatever_parts_exist(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = (rng.normal(size=(60, 6)) + 3 * np.eye(6)[y]).astype(np.float32)
    run = _fake_run(tmp_path / "r")
    arch = archetypes(x, y, predictions=y, k=5, classes=("a", "b", "c"))
    save_result(run, "archetypes", arch)
    adv = nearest_adversaries(x, y, np.array([0, 1, 2, 1]), np.array([1, 1, 2, 0]), k=5)
    save_result(run, "adversaries", adv)
    save_result(run, "top_features", top_features(x, y, top_k=3))
    loaded = load_result(run, "archetypes")
    np.testing.assert_array_equal(loaded.archetype, arch.archetype)
    assert loaded.ids == arch.ids
    page = build_report([run])
    # the report's sections, derived from the analysis records, in the paper's order
    assert [sid for sid, _, _ in sections()] == [
        "accuracy", "archetypes", "prototypes", "adversaries", "table-ii", "top_features",
        "density", "colours",
    ]  # fmt: skip
    assert ("density", "Feature density of the reference class", "Fig. 10") in sections()
    for sid, _, _ in sections():
        assert f"<section id='{sid}'>" in page
    assert "Not computed: run <code>thresher diagnose RUN --only colours</code>" in page
    assert "0.5561" in page  # the paper's Table II row next to ours
    assert "<td>class-prior</td>" in page  # which NNB forecast our row used
    assert page.count("data:image/png;base64,") == 3  # archetypes, adversaries, top features


@pytest.mark.slow
def test_train_diagnose_report_end_to_end(tmp_path: Path, cli: Cli) -> None:
    run = tmp_path / "run"
    code, _, err = cli(
        ["train", "digits", "--model", "mnist_lenet", "--out", str(run), "--epochs", "1",
         "--longtail", "10", "--json"]
    )  # fmt: skip
    assert code == 0, err
    code, out, err = cli(["diagnose", str(run), "--k", "5", "--top-k", "10", "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert set(info["analyses"]) == {
        "accuracy", "archetypes", "adversaries", "top_features", "density", "colours"
    }  # fmt: skip
    assert info["analyses"]["accuracy"]["imbalance_ratio"] == pytest.approx(10, rel=0.1)
    assert set(info["analyses"]["adversaries"]["table_ii"]) >= {"nnb", "fdr", "random"}
    for name in info["analyses"]:
        assert (run / "diagnose" / name / "result.json").is_file()
        assert (run / "diagnose" / name / "figure.png").stat().st_size > 1000
    assert (run / "diagnose" / "archetypes" / "items.parquet").is_file()
    protos = np.load(run / "diagnose" / "archetypes" / "prototypes.npy")
    assert protos.shape[:2] == (10, 4)
    code, out, err = cli(["diagnose", str(run), "--only", "density", "--reference", "3", "--json"])
    assert code == 0, err
    assert json.loads(out)["analyses"]["density"]["reference"] == "3"
    page_path = tmp_path / "report.html"
    code, _, err = cli(["report", str(run), "--out", str(page_path), "--compare", str(run)])
    assert code == 0, err
    page = page_path.read_text()
    for sid, _, _ in sections():
        assert f"<section id='{sid}'>" in page
    assert "Not computed" not in page
    assert page.count("data:image/png;base64,") >= 7
    assert 'src="http' not in page  # self-contained


def test_report_lists_label_issues_when_the_run_has_them(tmp_path: Path) -> None:
    from thresher.filter.labels import LabelIssues

    run = _fake_run(tmp_path / "r")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    save_result(run, "top_features", top_features(rng.normal(size=(60, 4)), y, top_k=2))
    assert "id='label-issues'" not in build_report([run])
    score = np.linspace(0.0, 1.0, 60)
    issues = LabelIssues(
        ids=np.array([f"s{i:02d}" for i in range(60)]),
        labels=y,
        is_label_issue=score > 0.9,
        label_score=score,
        suggested_label=(y + 1) % 3,
        params={"method": "ensemble", "folds": 5},
    )
    run.write_table("labels/result.parquet", issues.to_table())
    run.write_json("labels/params.json", issues.params)
    page = build_report([run])
    assert "id='label-issues'" in page
    assert "label issues: 6/60" in page
    # the most suspect first: s59 (label c, suggested a) heads the table
    first = page.index("<td>s59</td>")
    assert first < page.index("<td>s58</td>")
    assert "<td>s59</td><td>c</td><td>a</td><td>1.000</td><td>yes</td>" in page
