"""The real scorer (train, evaluate, relevance) on a tiny data set and model."""

from __future__ import annotations

import numpy as np
from torch import nn

from thresher.data.types import ImageDataset
from thresher.lrp_gus.scorer import TrainScorer
from thresher.models import InputTransform
from thresher.train import Recipe


def tiny(n: int, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 60, (n, 1, 6, 6)).astype(np.uint8)
    images[:, 0, labels, :] = 250  # a bright row per class: learnable
    return ImageDataset(
        images=images,
        labels=labels.astype(np.int64),
        ids=np.array([f"s{seed}/{i}" for i in range(n)]),
        classes=("a", "b", "c"),
    )


def builder(*, num_classes: int, in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(36 * in_channels, 8), nn.ReLU(), nn.Linear(8, num_classes)
    )


def test_scorer_trains_evaluates_and_scores_relevance() -> None:
    train, val = tiny(60, 0), tiny(30, 1)
    scorer = TrainScorer(
        train,
        val,
        model=builder,
        recipe=Recipe(epochs=3, batch_size=8),
        transform=InputTransform(),
        device="cpu",
    )
    positions = np.arange(0, 60, 2)
    score = scorer(positions, seed=5, relevance=True)
    assert 0.0 <= score.accuracy <= 1.0
    assert score.f1.shape == (3,)
    assert score.f is not None
    assert score.f.shape == (3,)
    assert np.all(score.f <= 0)
    assert set(scorer.last_seconds) == {"train", "evaluate", "relevance"}
    again = scorer(positions, seed=5, relevance=True)
    assert again.accuracy == score.accuracy
    np.testing.assert_allclose(again.f, score.f)
    assert scorer(positions, seed=5, relevance=False).f is None
