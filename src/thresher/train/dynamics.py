"""Training dynamics per training image: EL2N, GraNd and forgetting events.

The data-pruning literature scores each training image by how the model treats it while it
learns, then keeps the hard ones:

- **EL2N** (Paul et al. 2021, "Deep Learning on a Data Diet"): ``||softmax(f(x)) - y||_2``
  early in training, averaged over seeds.
- **GraNd** (same paper): the norm of the loss gradient for the image, early in training,
  averaged over seeds. Here the gradient of the classifier layer, in closed form: for
  ``logits = s (W h + b)`` and cross-entropy, ``dL/dW = s (p - y) h^T`` and
  ``dL/db = s (p - y)``, so ``||g|| = s ||p - y|| sqrt(||h||^2 + 1)`` (DeepCore's choice; the
  constant ``s`` of an architecture, e.g. ``cifar_fast``'s 1/9, does not change the order and
  is left out).
- **Forgetting events** (Toneva et al. 2019): how often an image goes from classified
  correctly to wrongly between two presentations in its minibatch, over the whole training.
  An image never classified correctly counts ``epochs + 1`` events (more than any learned one
  can have), as the paper ranks those as the most forgettable.

One full training per seed gives all three: the early scores are taken at the end of epoch
``score_epoch`` (default a tenth of the recipe's epochs, as the paper's 20 of 200), the
forgetting events over all epochs. The trainer is :func:`thresher.train.fit` with an observer,
so the models are the ones ``fit`` trains with those seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from thresher.data.types import ImageDataset
from thresher.device import as_tensor
from thresher.errors import ConfigError
from thresher.progress import track
from thresher.train.trainer import (
    ModelLike,
    TrainingObserver,
    Transform,
    fit,
    resolve_recipe,
    resolve_transform,
)

SIGNALS = ("el2n", "grand", "forgetting")


@dataclass(frozen=True, eq=False)
class TrainingDynamics:
    """Per-image training signals, averaged over seeds.

    Attributes:
        ids: ``(N,)`` image ids, in the training set's order.
        el2n, grand: ``(N,)`` early-training scores (higher = harder).
        forgetting: ``(N,)`` forgetting events (never learned = ``epochs + 1``).
        never_learned: ``(N,)`` share of the seeds in which the image was never classified
            correctly in its minibatch.
        seeds: the training seeds.
        score_epoch: the epoch after which EL2N and GraNd were taken.
        epochs: epochs of each training.
    """

    ids: np.ndarray
    el2n: np.ndarray
    grand: np.ndarray
    forgetting: np.ndarray
    never_learned: np.ndarray
    seeds: tuple[int, ...]
    score_epoch: int
    epochs: int

    def signals(self) -> dict[str, np.ndarray]:
        """``{"el2n": ..., "grand": ..., "forgetting": ...}`` (what selectors read)."""
        return {"el2n": self.el2n, "grand": self.grand, "forgetting": self.forgetting}

    def to_table(self) -> Any:
        """A ``pyarrow.Table``, one row per image; the settings in the schema metadata."""
        import json

        import pyarrow as pa

        table = pa.table(
            {
                "id": pa.array(self.ids.astype(str)),
                "el2n": pa.array(self.el2n, type=pa.float64()),
                "grand": pa.array(self.grand, type=pa.float64()),
                "forgetting": pa.array(self.forgetting, type=pa.float64()),
                "never_learned": pa.array(self.never_learned, type=pa.float64()),
            }
        )
        meta = {"seeds": list(self.seeds), "score_epoch": self.score_epoch, "epochs": self.epochs}
        return table.replace_schema_metadata({"dynamics": json.dumps(meta)})

    @classmethod
    def from_table(cls, table: Any) -> TrainingDynamics:
        import json

        meta = json.loads(table.schema.metadata[b"dynamics"])
        col = {name: table.column(name).to_numpy() for name in table.column_names}
        return cls(
            ids=np.asarray(table.column("id").to_pylist(), dtype=str),
            el2n=col["el2n"].astype(np.float64),
            grand=col["grand"].astype(np.float64),
            forgetting=col["forgetting"].astype(np.float64),
            never_learned=col["never_learned"].astype(np.float64),
            seeds=tuple(int(s) for s in meta["seeds"]),
            score_epoch=int(meta["score_epoch"]),
            epochs=int(meta["epochs"]),
        )


def default_score_epoch(epochs: int) -> int:
    """A tenth of the training, at least one epoch (Paul et al.: epoch 20 of 200)."""
    return max(1, math.ceil(epochs / 10))


def training_dynamics(
    model: ModelLike,
    train: ImageDataset,
    *,
    recipe: Any = None,
    seeds: int | Sequence[int] = 3,
    score_epoch: int | None = None,
    device: str | torch.device | None = None,
    transform: Transform | str | None = None,
    batch_size: int = 512,
) -> TrainingDynamics:
    """EL2N, GraNd and forgetting events of every image of ``train``, averaged over seeds.

    Parameters
    ----------
    model : registry name, builder or module (as :func:`thresher.train.fit`).
    train : labelled training images ``(N, C, H, W)``.
    recipe : the training recipe (default the architecture's); one full training per seed.
    seeds : a count (seeds ``0..n-1``) or a list.
    score_epoch : the epoch after which EL2N and GraNd are taken; default
        :func:`default_score_epoch`.
    device, transform : as :func:`thresher.train.fit`.
    batch_size : images per forward pass of the early scores.

    Raises
    ------
    DataError: unlabelled data. ConfigError: no seeds, or ``score_epoch`` outside the training.
    """
    labels = train.require_labels("training dynamics")
    recipe_ = resolve_recipe(model, recipe)
    tf = resolve_transform(model, transform)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ConfigError(f"training dynamics need distinct seeds, got {seeds!r}; e.g. seeds=3")
    epoch = default_score_epoch(recipe_.epochs) if score_epoch is None else int(score_epoch)
    if not 1 <= epoch <= recipe_.epochs:
        raise ConfigError(
            f"score_epoch must be within the training's 1..{recipe_.epochs} epochs, got {epoch}"
        )
    n = len(train)
    el2n = np.zeros(n)
    grand = np.zeros(n)
    forgetting = np.zeros(n)
    never = np.zeros(n)
    for seed in track(seed_list, total=len(seed_list), desc="training dynamics"):
        observer = _DynamicsObserver(
            train, labels, score_epoch=epoch, transform=tf, batch_size=batch_size
        )
        fit(model, train, recipe=recipe_, seed=seed, device=device, transform=tf,
            observer=observer)  # fmt: skip
        if observer.el2n is None or observer.grand is None:  # score_epoch is checked above
            raise RuntimeError(f"epoch {epoch} never ended")
        el2n += observer.el2n
        grand += observer.grand
        events = observer.forgotten.astype(np.float64)
        events[~observer.learned] = recipe_.epochs + 1
        forgetting += events
        never += ~observer.learned
    k = len(seed_list)
    return TrainingDynamics(
        ids=np.asarray(train.ids).astype(str),
        el2n=el2n / k,
        grand=grand / k,
        forgetting=forgetting / k,
        never_learned=never / k,
        seeds=tuple(seed_list),
        score_epoch=epoch,
        epochs=recipe_.epochs,
    )


class _DynamicsObserver(TrainingObserver):
    """Counts forgetting events per image and takes the early scores at ``score_epoch``."""

    def __init__(
        self,
        train: ImageDataset,
        labels: np.ndarray,
        *,
        score_epoch: int,
        transform: Transform,
        batch_size: int,
    ) -> None:
        n = len(train)
        self.train = train
        self.labels = labels
        self.score_epoch = score_epoch
        self.transform = transform
        self.batch_size = batch_size
        self.previous = np.zeros(n, dtype=bool)  # correct at the last presentation
        self.learned = np.zeros(n, dtype=bool)  # ever correct
        self.forgotten = np.zeros(n, dtype=np.int64)
        self.el2n: np.ndarray | None = None
        self.grand: np.ndarray | None = None

    def on_batch(self, epoch: int, positions: np.ndarray, logits: torch.Tensor) -> None:
        correct = logits.argmax(1).cpu().numpy() == self.labels[positions]
        self.forgotten[positions] += self.previous[positions] & ~correct
        self.previous[positions] = correct
        self.learned[positions] |= correct

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        if epoch == self.score_epoch:
            self.el2n, self.grand = early_scores(
                model,
                self.train,
                self.labels,
                transform=self.transform,
                batch_size=self.batch_size,
            )


def early_scores(
    model: nn.Module,
    data: ImageDataset,
    labels: np.ndarray,
    *,
    transform: Transform,
    batch_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """``(el2n, grand)``, each ``(N,)``: the error norm and the classifier layer's gradient
    norm (closed form, see the module's docstring) of every image, the model in eval mode.

    The classifier layer is the last ``nn.Linear`` the forward runs; its input is ``h``.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"{type(model).__name__} has no nn.Linear classifier; GraNd needs one")
    seen: list[tuple[nn.Module, torch.Tensor]] = []

    def grab(module: nn.Module, args: tuple[Any, ...]) -> None:
        seen.append((module, args[0]))

    handles = [m.register_forward_pre_hook(grab) for m in linears]
    device = next(model.parameters()).device
    was_training = model.training
    el2n = np.empty(len(data))
    grand = np.empty(len(data))
    model.eval()
    try:
        with torch.no_grad():
            for a in range(0, len(data), batch_size):
                b = min(a + batch_size, len(data))
                x = as_tensor(data.images[a:b]).to(device)
                seen.clear()
                logits = model(transform(x)).float()
                head, h = seen[-1]
                h = h.float().flatten(1)
                p = torch.softmax(logits, dim=1)
                err = p.clone()
                err[torch.arange(b - a), torch.from_numpy(labels[a:b]).to(device)] -= 1.0
                e = torch.linalg.vector_norm(err, dim=1)
                h_sq = (h * h).sum(1) + (1.0 if getattr(head, "bias", None) is not None else 0.0)
                el2n[a:b] = e.double().cpu().numpy()
                grand[a:b] = (e * h_sq.sqrt()).double().cpu().numpy()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return el2n, grand
