"""evaluate(): retrain on a subset with several seeds, per-class metrics, clear refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from thresher.data.idx import load_idx
from thresher.data.types import ImageDataset
from thresher.errors import ConfigError, DataError
from thresher.evaluate import EvaluationResult, evaluate
from thresher.train import Recipe

ONE_EPOCH = Recipe(batch_size=64, epochs=1)


@pytest.fixture(scope="module")
def mnist(data_root: Path) -> tuple[ImageDataset, ImageDataset]:
    train = load_idx(data_root / "mnist", split="train").take(np.arange(2000))
    test = load_idx(data_root / "mnist", split="test").take(np.arange(500))
    return train, test


@pytest.fixture(scope="module")
def result(mnist: tuple[ImageDataset, ImageDataset]) -> EvaluationResult:
    train, test = mnist
    return evaluate(
        train, test, model="mnist_lenet", recipe=ONE_EPOCH, subset_ids=train.ids[:400], seeds=2
    )


def test_evaluate_reports_per_seed_and_per_class_metrics(
    result: EvaluationResult, mnist: tuple[ImageDataset, ImageDataset]
) -> None:
    train, test = mnist
    assert result.seeds == (0, 1)
    assert (result.subset_size, result.train_size, result.test_size) == (400, 2000, 500)
    assert result.compression == pytest.approx(0.8)
    assert result.classes == train.classes
    assert result.accuracy.shape == (2,)
    assert result.f1.shape == result.precision.shape == result.recall.shape == (2, 10)
    assert result.confusion.shape == (2, 10, 10)
    # The confusion matrices hold every test image, rows by true class.
    np.testing.assert_array_equal(
        result.confusion.sum(axis=2)[0], np.bincount(test.labels, minlength=10)
    )
    # Accuracy is the confusion matrix's diagonal share; both models learned something.
    diag = np.trace(result.confusion, axis1=1, axis2=2) / 500
    np.testing.assert_allclose(result.accuracy, diag)
    assert (result.accuracy > 0.3).all()
    assert result.accuracy[0] != result.accuracy[1] or not np.array_equal(
        result.f1[0], result.f1[1]
    )
    assert result.accuracy_mean == pytest.approx(result.accuracy.mean())
    assert result.accuracy_std == pytest.approx(result.accuracy.std(ddof=1))
    assert result.f1_mean.shape == result.f1_std.shape == (10,)
    np.testing.assert_array_equal(
        result.subset_class_counts, np.bincount(train.labels[:400], minlength=10)
    )
    assert result.warnings == ()
    assert not result.stacked  # CPU: one model after another


def test_summary_table_and_dict(result: EvaluationResult) -> None:
    summary = result.summary()
    assert re.fullmatch(r"acc \d+\.\d\d \+- \d+\.\d\d % \(n=2\)", summary)
    assert f"{100 * result.accuracy_mean:.2f}" in summary
    table = result.to_table()
    assert table.num_rows == 2
    assert table.column("seed").to_pylist() == [0, 1]
    assert table.column("f1").to_pylist()[1] == pytest.approx(result.f1[1].tolist())
    assert json.loads(table.schema.metadata[b"classes"]) == list(result.classes)
    d = json.loads(json.dumps(result.to_dict()))
    assert d["accuracy_mean"] == pytest.approx(result.accuracy_mean)
    assert d["compression"] == pytest.approx(0.8)
    assert d["summary"] == summary


def test_the_same_seeds_give_the_same_result(
    result: EvaluationResult, mnist: tuple[ImageDataset, ImageDataset]
) -> None:
    train, test = mnist
    again = evaluate(
        train, test, model="mnist_lenet", recipe=ONE_EPOCH, subset_ids=train.ids[:400], seeds=[1]
    )
    assert again.accuracy[0] == result.accuracy[1]
    np.testing.assert_array_equal(again.confusion[0], result.confusion[1])
    assert again.accuracy_std == 0.0


def test_seed_pieces_round_trip_through_json_and_merge_back(result: EvaluationResult) -> None:
    pieces = [
        EvaluationResult.from_dict(json.loads(json.dumps(result.seed_result(s).to_dict())))
        for s in result.seeds
    ]
    assert [p.seeds for p in pieces] == [(0,), (1,)]
    merged = EvaluationResult.merge(pieces)
    assert merged.to_dict() == result.to_dict()
    with pytest.raises(ValueError, match="repeat a seed"):
        EvaluationResult.merge([pieces[0], pieces[0]])
    other = EvaluationResult.from_dict({**pieces[1].to_dict(), "subset_size": 401})
    with pytest.raises(ValueError, match="not the same evaluation"):
        EvaluationResult.merge([pieces[0], other])
    with pytest.raises(KeyError, match="seed 7"):
        result.seed_result(7)


def _synthetic(n: int, classes: tuple[str, ...], *, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(classes), n)
    images = rng.integers(0, 60, (n, 1, 28, 28)).astype(np.uint8)
    images[np.arange(n), :, labels * 5 + 2, 4:20] = 250
    return ImageDataset(
        images=images, labels=labels, ids=[f"s{seed}-{i}" for i in range(n)], classes=classes
    )


def test_classes_the_models_never_saw_are_warned_about_not_refused() -> None:
    train = _synthetic(60, ("a", "b", "c"))
    test = _synthetic(40, ("a", "b", "c", "d"), seed=1)
    no_c = train.ids[train.labels != 2]
    res = evaluate(train, test, model="mnist_lenet", recipe=ONE_EPOCH, subset_ids=no_c, seeds=1)
    assert res.classes == ("a", "b", "c", "d")
    assert res.confusion.shape == (1, 4, 4)
    assert res.subset_class_counts[2] == 0
    assert res.f1[0, 3] == 0.0  # "d" cannot be predicted
    assert res.recall[0, 3] == 0.0
    assert any("'d' is not a training class" in w for w in res.warnings)
    assert any("'c' has no image in the training subset" in w for w in res.warnings)


def test_test_classes_are_matched_by_name() -> None:
    train = _synthetic(40, ("a", "b", "c"))
    test = _synthetic(30, ("c", "a", "b"), seed=2)  # same classes, another order
    res = evaluate(train, test, model="mnist_lenet", recipe=ONE_EPOCH, seeds=1)
    assert res.classes == ("a", "b", "c")
    expected_support = np.bincount(np.array([2, 0, 1])[test.labels], minlength=3)
    np.testing.assert_array_equal(res.support, expected_support)
    assert res.warnings == ()


def test_evaluate_refuses_bad_input() -> None:
    train = _synthetic(30, ("a", "b"))
    test = _synthetic(20, ("a", "b"), seed=1)
    kw = {"model": "mnist_lenet", "recipe": ONE_EPOCH}
    with pytest.raises(DataError, match="empty"):
        evaluate(train, test, subset_ids=[], **kw)
    with pytest.raises(DataError, match="not in the data set"):
        evaluate(train, test, subset_ids=["s0-1", "nope"], **kw)
    with pytest.raises(DataError, match="more than once"):
        evaluate(train, test, subset_ids=["s0-1", "s0-1"], **kw)
    unlabelled = ImageDataset(images=test.images, labels=None, ids=test.ids)
    with pytest.raises(DataError, match="unlabelled"):
        evaluate(train, unlabelled, **kw)
    with pytest.raises(DataError, match="unlabelled"):
        evaluate(unlabelled, test, **kw)
    with pytest.raises(ConfigError, match="seeds"):
        evaluate(train, test, seeds=0, **kw)
    with pytest.raises(ConfigError, match="repeat"):
        evaluate(train, test, seeds=[1, 1], **kw)
    rgb = ImageDataset(
        images=np.zeros((5, 3, 28, 28), np.uint8), labels=np.arange(5) % 2, ids=list("abcde")
    )
    with pytest.raises(DataError, match="channel"):
        evaluate(train, rgb, **kw)
