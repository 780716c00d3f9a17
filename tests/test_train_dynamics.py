"""Training dynamics (EL2N, GraNd, forgetting events) against slow references, and the
selectors and workflow built on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from thresher.data.idx import load_idx
from thresher.data.types import ImageDataset
from thresher.errors import ConfigError
from thresher.filter import select
from thresher.models import transform_for
from thresher.train import Recipe, TrainingObserver, fit
from thresher.train.dynamics import early_scores, training_dynamics

RECIPE = Recipe(batch_size=32, epochs=3, lr=0.003)


@pytest.fixture(scope="module")
def digits(data_root: Path) -> ImageDataset:
    return load_idx(data_root / "mnist", split="train").take(np.arange(240))


class _Recorder(TrainingObserver):
    def __init__(self) -> None:
        self.batches: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.epochs: list[int] = []

    def on_batch(self, epoch: int, positions: np.ndarray, logits: torch.Tensor) -> None:
        self.batches.append((epoch, positions.copy(), logits.argmax(1).numpy()))

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        self.epochs.append(epoch)


def test_an_observer_sees_every_image_once_per_epoch_and_changes_nothing(
    digits: ImageDataset,
) -> None:
    plain = fit("mnist_lenet", digits, recipe=RECIPE, seed=4)
    recorder = _Recorder()
    watched = fit("mnist_lenet", digits, recipe=RECIPE, seed=4, observer=recorder)
    for a, b in zip(
        plain.model.state_dict().values(), watched.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert recorder.epochs == [1, 2, 3]
    for epoch in (1, 2, 3):
        seen = np.concatenate([p for e, p, _ in recorder.batches if e == epoch])
        assert sorted(seen.tolist()) == list(range(len(digits)))


def _forgetting_reference(
    batches: list[tuple[int, np.ndarray, np.ndarray]], labels: np.ndarray, epochs: int
) -> np.ndarray:
    """Toneva et al. as written: walk the presentations one image at a time."""
    previous: dict[int, bool] = {}
    learned: set[int] = set()
    events = np.zeros(labels.shape[0])
    for _, positions, predicted in batches:
        for pos, pred in zip(positions.tolist(), predicted.tolist(), strict=True):
            correct = pred == labels[pos]
            if previous.get(pos, False) and not correct:
                events[pos] += 1
            previous[pos] = correct
            if correct:
                learned.add(pos)
    for pos in range(labels.shape[0]):
        if pos not in learned:
            events[pos] = epochs + 1
    return events


def test_forgetting_events_match_a_per_image_reference(digits: ImageDataset) -> None:
    labels = digits.require_labels("test")
    recorder = _Recorder()
    fit("mnist_lenet", digits, recipe=RECIPE, seed=1, observer=recorder)
    expected = _forgetting_reference(recorder.batches, labels, RECIPE.epochs)
    dyn = training_dynamics("mnist_lenet", digits, recipe=RECIPE, seeds=[1], score_epoch=1)
    np.testing.assert_array_equal(dyn.forgetting, expected)
    assert 0 < (dyn.forgetting > 0).sum() < len(digits)  # the sample has both kinds
    np.testing.assert_array_equal(dyn.never_learned, expected == RECIPE.epochs + 1)


def test_el2n_and_grand_match_per_image_autograd(digits: ImageDataset) -> None:
    model = fit("mnist_lenet", digits, recipe=RECIPE.replace(epochs=1), seed=0).model
    labels = digits.require_labels("test")
    tf = transform_for("mnist_lenet")
    el2n, grand = early_scores(model, digits, labels, transform=tf, batch_size=64)
    head = model.fc
    for i in range(0, len(digits), 37):
        x = tf(torch.from_numpy(digits.images[i : i + 1]))
        model.zero_grad()
        logits = model(x)
        p = torch.softmax(logits, 1)[0].detach()
        onehot = torch.zeros_like(p)
        onehot[int(labels[i])] = 1.0
        assert el2n[i] == pytest.approx(float(torch.linalg.vector_norm(p - onehot)), rel=1e-5)
        nn.functional.cross_entropy(logits, torch.tensor([int(labels[i])])).backward()
        g = torch.cat([head.weight.grad.flatten(), head.bias.grad.flatten()])
        assert grand[i] == pytest.approx(float(torch.linalg.vector_norm(g)), rel=1e-4)
    assert model.training is False  # eval mode as given is kept


def test_dynamics_average_over_seeds_and_refuse_bad_settings(digits: ImageDataset) -> None:
    one = [
        training_dynamics("mnist_lenet", digits, recipe=RECIPE, seeds=[s], score_epoch=2)
        for s in (0, 1)
    ]
    both = training_dynamics("mnist_lenet", digits, recipe=RECIPE, seeds=2, score_epoch=2)
    np.testing.assert_allclose(both.el2n, (one[0].el2n + one[1].el2n) / 2)
    np.testing.assert_allclose(both.forgetting, (one[0].forgetting + one[1].forgetting) / 2)
    again = type(both).from_table(both.to_table())
    np.testing.assert_array_equal(again.grand, both.grand)
    assert (again.seeds, again.score_epoch, again.epochs) == ((0, 1), 2, 3)
    with pytest.raises(ConfigError, match=r"score_epoch must be within the training's 1\.\.3"):
        training_dynamics("mnist_lenet", digits, recipe=RECIPE, seeds=1, score_epoch=4)
    with pytest.raises(ConfigError, match="distinct seeds"):
        training_dynamics("mnist_lenet", digits, recipe=RECIPE, seeds=[1, 1])


def test_dynamics_selectors_drop_the_easiest_first_within_each_class() -> None:
    ids = np.array([f"i{k}" for k in range(8)])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    score = np.array([0.9, 0.1, 0.5, 0.2, 0.3, 0.8, 0.05, 0.6])
    for name in ("el2n", "grand", "forgetting"):
        res = select(name, ids, keep=0.5, labels=labels, stratified=True, signals={name: score})
        assert sorted(res.ids[res.kept].tolist()) == ["i0", "i2", "i5", "i7"]
        assert set(res.reason[~res.kept]) == {name}
    with pytest.raises(ConfigError, match=r"needs the per-item signal\(s\) el2n.*--baseline el2n"):
        select("el2n", ids, keep=0.5, labels=labels)
    with pytest.raises(ConfigError, match=r"signal 'grand' has shape \(3,\)"):
        select("grand", ids, keep=0.5, labels=labels, signals={"grand": score[:3]})
    with pytest.raises(ConfigError, match="forgetting selector needs labels"):
        select("forgetting", ids, keep=0.5, signals={"forgetting": score})


def test_filter_workflow_trains_for_the_dynamics_once_and_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import thresher.workflows.dynamics as dynamics_module
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    out = tmp_path / "run"
    train_run(out, data=DataSpec(name="digits", limit=150), model="mnist_lenet", epochs=2)
    calls: list[tuple[int, ...]] = []
    real = dynamics_module.training_dynamics

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(tuple(kwargs["seeds"]) if not isinstance(kwargs["seeds"], int) else
                     tuple(range(kwargs["seeds"])))  # fmt: skip
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dynamics_module, "training_dynamics", counting)
    run = open_run(out)
    first = run_filter(run, FilterSettings(baseline="el2n", keep=0.6, dynamics_seeds=2))
    second = run_filter(run, FilterSettings(baseline="forgetting", keep=0.6, dynamics_seeds=2))
    assert calls == [(0, 1)]  # computed once, reused by the second selector
    assert first.kept.sum() == second.kept.sum() == 90
    assert "dynamics" in open_run(out).steps()
    assert (out / "filter" / "el2n-keep60-seed0-dyn2" / "result.parquet").is_file()
    with pytest.raises(ConfigError, match="--dynamics-seeds must be >= 1"):
        run_filter(run, FilterSettings(baseline="grand", keep=0.6, dynamics_seeds=0))


def test_selectors_take_a_class_aware_budget_through_the_workflow(tmp_path: Path) -> None:
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    out = tmp_path / "run"
    train_run(out, data=DataSpec(name="digits", limit=150), model="mnist_lenet", epochs=1)
    run = open_run(out)
    labels = np.asarray(run_dataset_labels(run))
    settings = FilterSettings(baseline="kcenter", keep=0.5, per_class=True)
    result = run_filter(run, settings, cloud=False)
    kept = np.bincount(labels[result.kept], minlength=10)
    assert np.all(np.abs(kept - np.bincount(labels, minlength=10) * 0.5) < 1)
    assert settings.tag() == "kcenter-keep50-seed0-perclass"
    assert FilterSettings(baseline="kcenter", keep=0.5).tag() == "kcenter-keep50-seed0"


def run_dataset_labels(run: object) -> np.ndarray:
    from thresher.workflows.run import run_dataset

    return run_dataset(run, "train").require_labels("test")  # type: ignore[arg-type]


def test_the_cli_lists_the_dynamics_selectors_with_what_they_need(cli: Any) -> None:
    import json

    code, out, err = cli(["selectors", "--json"])
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    for name in ("el2n", "grand", "forgetting"):
        assert rows[name]["needs_signals"] == [name]
        assert rows[name]["needs_labels"] is True
    code, out, _ = cli(["selectors"])
    assert "training dynamics" in out


def test_a_class_aware_budget_that_cannot_keep_every_class_is_refused() -> None:
    ids = np.array([str(i) for i in range(10)])
    with pytest.raises(ConfigError, match="fewer than the 10 classes: a class-aware budget"):
        select("random", ids, keep=0.5, labels=np.arange(10), stratified=True)
    kept = select("random", ids, keep=0.5, labels=np.arange(10)).kept  # global: fine
    assert kept.sum() == 5
