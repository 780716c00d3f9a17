"""The real scorer of an LRP-GUS iteration: train on the subset, evaluate, score relevance.

Fast path: the training images go to the device once per model (the foundation's trainer, no
DataLoader); the evaluation images stay on the device for the whole search; relevance is one
batched modified backward pass per batch, streamed into per-class sums.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from thresher.data.types import ImageDataset
from thresher.device import as_tensor, resolve_device
from thresher.evaluate import class_metrics
from thresher.explain import LRPSettings, class_relevance
from thresher.lrp_gus.search import Score
from thresher.train import Recipe, fit
from thresher.train.trainer import ModelLike, Transform, resolve_transform


class TrainScorer:
    """``scorer(positions, seed=, relevance=) -> Score`` for :func:`run_search`.

    Parameters
    ----------
    train : T, labelled ``(N, C, H, W)``.
    evaluation : the split accuracy and F1 are measured on (a validation split by default).
    model : registry name (or builder/module) trained at every iteration.
    recipe : the training recipe.
    lrp : how relevance is computed.
    device : default CUDA when present.
    eval_batch_size : images per evaluation forward pass.
    """

    def __init__(
        self,
        train: ImageDataset,
        evaluation: ImageDataset,
        *,
        model: ModelLike,
        recipe: Recipe,
        lrp: LRPSettings | None = None,
        device: str | torch.device | None = None,
        transform: Transform | str | None = None,
        eval_batch_size: int = 512,
    ) -> None:
        self.train = train
        self.labels = train.require_labels("the search")
        self.eval_labels = evaluation.require_labels("the search's evaluation split")
        self.model = model
        self.recipe = recipe
        self.lrp = lrp or LRPSettings()
        self.device = resolve_device(device)
        self.transform = resolve_transform(model, transform)
        self.eval_batch_size = eval_batch_size
        self._eval_x = as_tensor(evaluation.images).to(self.device)
        self._train_x = as_tensor(train.images).to(self.device)
        self.last_seconds: dict[str, float] = {}  # train / evaluate / relevance of the last call

    def __call__(self, positions: np.ndarray, *, seed: int, relevance: bool) -> Score:
        t0 = time.perf_counter()
        result = fit(
            self.model,
            self.train,
            recipe=self.recipe,
            seed=seed,
            device=self.device,
            transform=self.transform,
            indices=positions,
        )
        net = result.model.to(self.device).eval()
        t1 = time.perf_counter()
        with torch.inference_mode():
            pred = torch.cat(
                [
                    net(self.transform(self._eval_x[a : a + self.eval_batch_size])).argmax(1)
                    for a in range(0, self._eval_x.shape[0], self.eval_batch_size)
                ]
            )
        k = self.train.num_classes
        m = class_metrics(self.eval_labels, pred.cpu().numpy(), num_classes=k)
        t2 = time.perf_counter()
        f = None
        if relevance:
            idx = torch.from_numpy(np.asarray(positions, dtype=np.int64)).to(self.device)
            rel = class_relevance(
                net,
                self._train_x[idx],
                self.labels[positions],
                num_classes=k,
                transform=self.transform,
                settings=self.lrp,
                device=self.device,
            )
            f = rel.negative_intensity()
        t3 = time.perf_counter()
        self.last_seconds = {"train": t1 - t0, "evaluate": t2 - t1, "relevance": t3 - t2}
        return Score(accuracy=m.accuracy, f1=m.f1, f=f)
