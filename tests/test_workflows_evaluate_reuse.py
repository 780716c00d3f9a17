"""The run's own model counts as the full-set seed it already is (no second training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run: mnist_lenet, one epoch on 120 real digits, seed 0."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("reuse") / "run"
    train_run(out, data=DataSpec(name="digits", limit=120), model="mnist_lenet", epochs=1)
    return out


@pytest.fixture
def trained_seeds(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The seeds of every model the sweep trains, in order."""
    import thresher.evaluate as evaluate_module

    seen: list[list[int]] = []
    real = evaluate_module.evaluate

    def counting(*args: object, **kwargs: object) -> object:
        seen.append(list(kwargs["seeds"]))  # type: ignore[call-overload]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(evaluate_module, "evaluate", counting)
    return seen


def _copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def test_the_full_set_reuses_the_runs_model_as_its_seed(
    trained: Path, tmp_path: Path, trained_seeds: list[list[int]]
) -> None:
    from thresher.evaluate import evaluate
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import open_run, run_dataset, run_recipe

    run = open_run(_copy(trained, tmp_path))
    got = evaluate_run(run, subset_ids=None, seeds=2, epochs=1, name="full")
    assert trained_seeds == [[1]]  # seed 0 is the run's model: tested, not trained again
    stored = json.loads((run.path / "test_metrics.json").read_text())
    assert got.accuracy[0] == pytest.approx(stored["accuracy"], abs=0)
    assert got.train_seconds[0] == run.manifest["steps"]["train"]["seconds"]

    # ... and it is what training that seed from scratch gives (CPU training is deterministic)
    scratch = evaluate(
        run_dataset(run, "train"),
        run_dataset(run, "test"),
        model="mnist_lenet",
        recipe=run_recipe(run, epochs=1),
        seeds=[0],
        stack=False,
    )
    np.testing.assert_array_equal(got.confusion[:1], scratch.confusion)
    np.testing.assert_array_equal(got.f1[:1], scratch.f1)


def test_another_recipe_or_a_subset_trains_every_seed(
    trained: Path, tmp_path: Path, trained_seeds: list[list[int]]
) -> None:
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import open_run, run_dataset

    run = open_run(_copy(trained, tmp_path))
    evaluate_run(run, subset_ids=None, seeds=2, epochs=2, name="longer")
    assert trained_seeds == [[0], [1]]  # the run's model had 1 epoch: not the same training
    trained_seeds.clear()
    half = run_dataset(run, "train").ids[::2]
    evaluate_run(run, subset_ids=half, seeds=1, epochs=1, name="half")
    assert trained_seeds == [[0]]


def test_a_given_model_is_never_counted_as_a_trained_seed(
    trained: Path, tmp_path: Path, trained_seeds: list[list[int]]
) -> None:
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import open_run

    path = _copy(trained, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    # As `thresher init --model` records a given model: same recipe and seed, not trained here.
    manifest["config"]["origin"] = "model"
    (path / "manifest.json").write_text(json.dumps(manifest))
    evaluate_run(open_run(path), subset_ids=None, seeds=1, epochs=1, name="full")
    assert trained_seeds == [[0]]


def test_evaluate_trained_needs_one_seed_and_one_time_per_model(trained: Path) -> None:
    from thresher.errors import ConfigError
    from thresher.evaluate import evaluate_trained
    from thresher.workflows.run import open_run, run_dataset, run_model, run_recipe

    run = open_run(trained)
    model = run_model(run)
    with pytest.raises(ConfigError, match="one seed and one time per model"):
        evaluate_trained(
            [model, model],
            run_dataset(run, "train"),
            run_dataset(run, "test"),
            model="mnist_lenet",
            recipe=run_recipe(run),
            seeds=[0],
            train_seconds=[1.0],
        )
