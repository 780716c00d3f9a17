"""A comparison filters each method's subset once: later passes (more seeds) reuse it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

SWEEP = {"methods": ("random", "similar", "outliers"), "keeps": (0.8,), "epochs": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: mnist_lenet, one epoch on 150 real digits, seed 0."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("compare-reuse") / "run"
    train_run(out, data=DataSpec(name="digits", limit=150), model="mnist_lenet", epochs=1)
    return out


@pytest.fixture
def filtered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The filters and selectors actually computed, in order."""
    import thresher.workflows.filter as filter_module

    calls: list[str] = []
    real_filter, real_select = filter_module.filter_dataset, filter_module.select

    def counting_filter(*args: object, **kwargs: object) -> object:
        calls.append(f"filter o{kwargs['outliers']} s{kwargs['similar']}")
        return real_filter(*args, **kwargs)  # type: ignore[arg-type]

    def counting_select(name: str, *args: object, **kwargs: object) -> object:
        calls.append(f"select {name}")
        return real_select(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(filter_module, "filter_dataset", counting_filter)
    monkeypatch.setattr(filter_module, "select", counting_select)
    return calls


def test_a_second_compare_pass_reuses_every_stored_subset(
    trained: Path, tmp_path: Path, filtered: list[str]
) -> None:
    from thresher.workflows.compare import compare_run
    from thresher.workflows.run import open_run

    stepwise, direct = tmp_path / "stepwise", tmp_path / "direct"
    shutil.copytree(trained, stepwise)
    shutil.copytree(trained, direct)
    compare_run(open_run(stepwise), seeds=1, **SWEEP)  # type: ignore[arg-type]
    assert len(filtered) == 3  # random, similar and outliers, each computed once
    stored = {p: p.read_bytes() for p in (stepwise / "filter").rglob("result.parquet")}
    filtered.clear()

    second = compare_run(open_run(stepwise), seeds=2, **SWEEP)  # type: ignore[arg-type]
    assert filtered == []  # the second pass filters nothing again
    assert {p: p.read_bytes() for p in (stepwise / "filter").rglob("result.parquet")} == stored
    # ... and gives the table a single pass over two seeds gives
    assert second.to_dict() == compare_run(open_run(direct), seeds=2, **SWEEP).to_dict()  # type: ignore[arg-type]


def test_a_stored_filter_is_recomputed_when_its_embeddings_or_settings_differ(
    trained: Path, tmp_path: Path, filtered: list[str]
) -> None:
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import open_run

    shutil.copytree(trained, tmp_path / "run")
    run = open_run(tmp_path / "run")
    settings = FilterSettings(outliers=0.1, similar=0.1)
    first = run_filter(run, settings, cloud=False, reuse=True)
    assert run_filter(run, settings, cloud=False, reuse=True).kept.tolist() == first.kept.tolist()
    assert len(filtered) == 1  # the second call read the stored result

    run_filter(run, settings, cloud=False)  # the `filter` command always recomputes
    assert len(filtered) == 2

    params = tmp_path / "run" / "filter" / settings.tag() / "params.json"
    stored = json.loads(params.read_text())
    params.write_text(json.dumps({**stored, "embeddings": "0123456789abcdef"}))
    again = run_filter(run, settings, cloud=False, reuse=True)  # other embeddings: recomputed
    assert len(filtered) == 3
    np.testing.assert_array_equal(again.kept, first.kept)

    run_filter(run, FilterSettings(outliers=0.1, similar=0.1, seed=1), cloud=False, reuse=True)
    assert len(filtered) == 4  # another seed is another request


def test_a_comparison_decodes_each_split_once_for_all_its_models(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import thresher.workflows.run as run_module
    from thresher.workflows.compare import compare_run
    from thresher.workflows.run import open_run, reusing_datasets, run_dataset

    shutil.copytree(trained, tmp_path / "run")
    run = open_run(tmp_path / "run")
    decoded: list[str] = []
    real = run_module._decode_run_dataset

    def counting(run: object, split: str) -> object:
        decoded.append(split)
        return real(run, split)  # type: ignore[arg-type]

    monkeypatch.setattr(run_module, "_decode_run_dataset", counting)
    table = compare_run(run, seeds=2, **SWEEP)  # type: ignore[arg-type]
    assert len(table.cells) == 3  # 4 cells x 2 seeds trained and tested ...
    assert sorted(decoded) == ["test", "train"]  # ... on one decoding of each split

    decoded.clear()
    run_dataset(run, "train")
    run_dataset(run, "train")
    assert decoded == ["train", "train"]  # outside a comparison nothing is kept
    with reusing_datasets():
        first = run_dataset(run, "train")
        assert run_dataset(run, "train") is first
        with pytest.raises(ValueError, match="read-only"):
            first.images[0, 0, 0, 0] = 0  # shared by every caller: nobody may change it
    assert decoded == ["train", "train", "train"]
