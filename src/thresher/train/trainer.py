"""The fast single-model trainer.

Why it is fast: the training images live on the device as one tensor (uint8 stays uint8), each
epoch draws one permutation from a seeded generator, a batch is an index slice ``x[idx]``, and
augmentation and normalisation run batched on the device. No DataLoader, no per-sample Python.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from thresher.data.types import ImageDataset, read_rows
from thresher.device import as_tensor, resolve_device
from thresher.errors import ConfigError, DataError
from thresher.models import InputTransform, create_model, model_spec, transform_for
from thresher.progress import track
from thresher.train.augment import augment_batch
from thresher.train.losses import make_criterion
from thresher.train.recipes import Recipe, get_recipe, set_lr

Transform = Callable[[torch.Tensor], torch.Tensor]
ModelBuilder = Callable[..., nn.Module]
ModelLike = str | nn.Module | ModelBuilder


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training.

    Attributes:
        epoch: 1-based epoch number.
        loss: mean training loss over the epoch's batches (weighted by batch size).
        accuracy: fraction of training images classified right while training (train mode,
            augmented, weights changing during the epoch).
        seconds: wall time of the epoch.
        images_per_s: training images processed per second.
        lr: learning rate of the epoch's last step.
    """

    epoch: int
    loss: float
    accuracy: float
    seconds: float
    images_per_s: float
    lr: float


@dataclass(frozen=True, eq=False)
class TrainResult:
    """A trained model and how it got there.

    Attributes:
        model: the trained model, in eval mode, on the CPU.
        history: one :class:`EpochStats` per epoch.
        recipe: the recipe used.
        seed: the seed of the initial weights, the batch order and the augmentation.
        num_train: number of training images.
        num_classes, in_channels: what the model was built for.
        model_name: registry name, or ``None`` for a user module/builder.
        device: where it was trained ("cpu", "cuda:0").
        stacked: ``True`` when it was trained side by side with others (``train_many``).
        precision: the resolved precision it was trained in (``fp32``, ``bf16``, ``fp16``).
    """

    model: nn.Module
    history: tuple[EpochStats, ...]
    recipe: Recipe
    seed: int
    num_train: int
    num_classes: int
    in_channels: int
    model_name: str | None = None
    device: str = "cpu"
    stacked: bool = False
    precision: str = "fp32"

    @property
    def seconds(self) -> float:
        return float(sum(e.seconds for e in self.history))

    @property
    def final_loss(self) -> float:
        return self.history[-1].loss

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (everything but the weights)."""
        return {
            "model_name": self.model_name,
            "seed": self.seed,
            "num_train": self.num_train,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "device": self.device,
            "stacked": self.stacked,
            "precision": self.precision,
            "recipe": self.recipe.to_dict(),
            "history": [vars(e).copy() for e in self.history],
        }


# --- shared helpers (also used by the ensemble trainer) -------------------------------------


def resolve_recipe(model: ModelLike, recipe: str | Recipe | None) -> Recipe:
    """The given recipe, or the registered architecture's default one."""
    if recipe is not None:
        return get_recipe(recipe)
    if isinstance(model, str):
        return get_recipe(model_spec(model).recipe)
    raise ConfigError("no recipe given for a user model; pass recipe= (e.g. 'paper-mnist')")


def resolve_transform(model: ModelLike, transform: Transform | str | None) -> Transform:
    """The given transform, the architecture's own, or plain ``/255`` scaling."""
    if isinstance(transform, str):
        return transform_for(transform)
    if transform is not None:
        return transform
    if isinstance(model, str):
        return transform_for(model)
    return InputTransform()


def build_model(
    model: ModelLike,
    *,
    seed: int,
    num_classes: int,
    in_channels: int,
    head: str = "linear",
    head_scale: float = 1.0,
) -> nn.Module:
    """A fresh model whose initial weights depend only on ``seed`` (a user module is copied),
    with the classifier ``head`` of :mod:`thresher.models.heads` (``Recipe.head``; a cosine
    head's logits are ``head_scale`` times cosines).

    The global RNG is left as it was.
    """
    from thresher.models.heads import with_head

    if isinstance(model, nn.Module):
        return with_head(copy.deepcopy(model), head, num_classes=num_classes, scale=head_scale)
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        if isinstance(model, str):
            built = create_model(model, num_classes=num_classes, in_channels=in_channels)
            return with_head(built, head, num_classes=num_classes, scale=head_scale)
        if callable(model):
            built = model(num_classes=num_classes, in_channels=in_channels)
            if not isinstance(built, nn.Module):
                raise ConfigError(
                    f"the model builder returned {type(built).__name__}, not an nn.Module; "
                    "make it return the model"
                )
            return with_head(built, head, num_classes=num_classes, scale=head_scale)
    raise ConfigError(
        f"model must be a registry name, an nn.Module or a builder, got {type(model).__name__}"
    )


def check_model_fits(
    net: nn.Module, transform: Transform, train: ImageDataset, *, device: torch.device
) -> None:
    """One image through ``net`` (eval mode, no RNG drawn): a model built for other channels,
    sizes or classes fails here with a ModelError instead of a torch traceback mid-training."""
    from thresher.errors import ModelError

    shape = tuple(train.images.shape[1:])
    was_training = net.training
    try:
        with torch.inference_mode():
            net.eval()
            logits = net(transform(images_to_device(train.images[:1], device)))
    except (RuntimeError, ValueError, TypeError) as err:
        reason = " ".join(str(err).split())  # torch messages may span lines; ours is one
        raise ModelError(
            f"the model cannot take {train.name}'s images of shape {shape} ({reason}); build it "
            f"with in_channels={train.channels} for this input size, or pick another model"
        ) from err
    finally:
        net.train(was_training)
    if not isinstance(logits, torch.Tensor):
        return  # a model returning several outputs: the training loss will say what it needs
    width = logits.shape[-1] if logits.ndim == 2 else None
    if width != train.num_classes:
        raise ModelError(
            f"the model outputs {tuple(logits.shape)} logits but {train.name} has "
            f"{train.num_classes} classes; build it with num_classes={train.num_classes}"
        )


def model_name_of(model: ModelLike) -> str | None:
    return model if isinstance(model, str) else None


def check_indices(indices: np.ndarray | Sequence[int] | None, n: int, *, what: str) -> np.ndarray:
    """``(K,)`` int64 positions: non-empty, in ``[0, n)``, no repeats (``None`` -> all)."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise DataError(
            f"{what} must be a 1-d array of integer positions, got {idx.dtype} {idx.shape}"
        )
    if idx.size == 0:
        raise DataError(f"{what} is empty; a model needs at least one training image")
    if idx.min() < 0 or idx.max() >= n:
        raise DataError(f"{what} holds positions outside [0, {n}); index the training set itself")
    if len(np.unique(idx)) != idx.size:
        raise DataError(f"{what} repeats a position; pass each training image once")
    return idx.astype(np.int64)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)``; a last batch of one image joins the one
    before it (batch norm cannot train on a single image)."""
    bounds = [(a, min(a + batch_size, n)) for a in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2] = (bounds[-2][0], n)
        bounds.pop()
    return bounds


def data_generator(seed: int, device: torch.device) -> torch.Generator:
    """The generator of a model's batch order and augmentation, separate from its init."""
    derived = int(np.random.SeedSequence([int(seed), 0x7EED]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(derived)


# A memory-mapped training set (a pixel cache) larger than this is not copied whole to the
# device: each batch is gathered from the map instead (the same rows in the same order, so the
# same training, at the cost of reading the rows each epoch).
RESIDENT_LIMIT_BYTES = 2 << 30


def batch_gatherer(
    images: np.ndarray, idx: np.ndarray, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``gather(positions) -> images[idx[positions]]`` on ``device``: from one device tensor
    when the subset fits, else straight from a memory map, batch by batch."""
    row_bytes = int(np.prod(images.shape[1:])) * images.itemsize
    if isinstance(images, np.memmap) and row_bytes * len(idx) > RESIDENT_LIMIT_BYTES:

        def from_map(batch: torch.Tensor) -> torch.Tensor:
            rows = idx[batch.cpu().numpy()]
            return torch.from_numpy(read_rows(images, rows)).to(device)

        return from_map
    resident = images_to_device(images[idx], device)
    return lambda batch: resident[batch]


def images_to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(N, C, H, W)`` stored pixels (uint8 stays uint8) as one tensor on ``device``."""
    return as_tensor(images).to(device)


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global RNG of ``device`` (dropout draws from it) and restore it afterwards."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        if cuda:
            torch.cuda.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        yield


def check_finite(loss: float, *, epoch: int) -> None:
    if not math.isfinite(loss):
        raise ConfigError(
            f"training diverged: the loss is {loss} in epoch {epoch}; lower the learning rate"
        )


def check_trainable(train: ImageDataset) -> np.ndarray:
    labels = train.require_labels("training")
    if train.num_classes < 2:
        raise DataError(f"{train.name} has {train.num_classes} class; training needs at least 2")
    return labels


DATA_INIT_SAMPLES = 5000  # images a model's data-dependent initialisation sees (first ones)


def init_from_data(
    net: nn.Module, transform: Transform, images: np.ndarray, *, device: torch.device
) -> None:
    """Let a model that defines ``init_from_data(x)`` (e.g. a whitening first layer) fit it to
    the first :data:`DATA_INIT_SAMPLES` training images, transformed, before the first step."""
    hook = getattr(net, "init_from_data", None)
    if callable(hook):
        with torch.no_grad():
            hook(transform(images_to_device(images, device)))


class WeightAverage:
    """Exponential moving average of a model's weights *and* batch-norm statistics.

    Wraps :class:`torch.optim.swa_utils.AveragedModel` (``use_buffers=True``): after step
    ``t``, ``avg = d_t * avg + (1 - d_t) * current`` with ``d_t = min(decay, (1 + t) / (10 + t))``
    (timm's warm-up, so the random initial weights do not linger in short runs).
    """

    def __init__(self, net: nn.Module, *, decay: float) -> None:
        from torch.optim.swa_utils import AveragedModel

        def average(
            avg: torch.Tensor, current: torch.Tensor, steps: torch.Tensor | int
        ) -> torch.Tensor:
            t = float(steps)
            d = min(decay, (1.0 + t) / (10.0 + t))
            return avg + (current - avg) * (1.0 - d)

        self._avg = AveragedModel(net, avg_fn=average, use_buffers=True)

    def update(self, net: nn.Module) -> None:
        self._avg.update_parameters(net)

    @property
    def module(self) -> nn.Module:
        return self._avg.module


# --- training --------------------------------------------------------------------------------


class TrainingObserver:
    """Watches a training run (training dynamics: forgetting events, early-epoch scores).

    :func:`fit` calls :meth:`on_batch` after every optimiser step with the batch's positions
    in the training set and its logits (of the augmented images, as the model saw them), and
    :meth:`on_epoch_end` after every epoch with the model in training mode (an observer that
    evaluates it must switch to eval mode and back). Both do nothing here: subclass and
    override what you need. An observer costs a device-to-host copy per batch.
    """

    def on_batch(self, epoch: int, positions: np.ndarray, logits: torch.Tensor) -> None:
        """``positions``: ``(B,)`` rows of ``train``; ``logits``: ``(B, K)``, detached."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> None:
        """After epoch ``epoch`` (1-based) of training ``model``."""


def fit(
    model: ModelLike,
    train: ImageDataset,
    *,
    recipe: str | Recipe | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    transform: Transform | str | None = None,
    indices: np.ndarray | Sequence[int] | None = None,
    precision: str | None = None,
    observer: TrainingObserver | None = None,
) -> TrainResult:
    """Train one model on ``train`` (or the rows ``indices`` of it).

    Parameters
    ----------
    model : registry name (built with ``seed``), ``builder(num_classes=, in_channels=)`` (called
        with ``seed``) or an ``nn.Module`` (copied; the caller's module is not changed).
    train : labelled images ``(N, C, H, W)``.
    recipe : a :class:`Recipe` or its name; default: the architecture's recipe.
    seed : decides the initial weights, the batch order, the augmentation and dropout.
    device : "cpu", "cuda", ...; default CUDA when present.
    transform : uint8 batch -> model input on the device; default the architecture's own.
    indices : ``(K,)`` positions in ``train`` to train on; default all.
    precision : ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (:mod:`thresher.precision`);
        default the recipe's. An unsupported one is refused before any training.
    observer : a :class:`TrainingObserver` told about every batch and epoch; it does not
        change the training (same weights with or without).

    Returns
    -------
    TrainResult with the model in eval mode on the CPU. Same seed, data, precision and thread
    count on the CPU give identical weights.
    """
    from thresher.precision import (
        autocast,
        memory_format,
        resolve_precision,
        to_input,
        use_channels_last,
    )

    recipe_ = resolve_recipe(model, recipe)
    labels = check_trainable(train)
    idx = check_indices(indices, len(train), what="indices")
    dev = resolve_device(device)
    prec = resolve_precision(precision or recipe_.precision, dev)
    tf = resolve_transform(model, transform)
    net = build_model(
        model,
        seed=seed,
        num_classes=train.num_classes,
        in_channels=train.channels,
        head=recipe_.head,
        head_scale=recipe_.head_scale,
    )
    net.to(dev).train()
    check_model_fits(net, tf, train, device=dev)
    init_from_data(net, tf, train.images[idx[:DATA_INIT_SAMPLES]], device=dev)
    channels_last = use_channels_last(prec, net)
    scaler = torch.amp.GradScaler("cuda") if prec == "fp16" else None

    gather = batch_gatherer(train.images, idx, dev)
    y_dev = torch.from_numpy(labels[idx]).to(dev)
    n = len(idx)
    gen = data_generator(seed, dev)
    bounds = batch_bounds(n, recipe_.batch_size)
    optimizer = recipe_.make_optimizer(net)
    counts = np.bincount(labels[idx], minlength=train.num_classes)
    criterion = make_criterion(recipe_, class_counts=counts, device=dev)
    history: list[EpochStats] = []
    step = 0
    ema: WeightAverage | None = None
    # Dropout draws from the global RNG: seed it for this run, then restore the caller's state.
    with seeded_rng(seed, dev), memory_format(net, channels_last):
        if recipe_.ema_decay:
            ema = WeightAverage(net, decay=recipe_.ema_decay)
        for epoch in range(1, recipe_.epochs + 1):
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=gen, device=dev)
            loss_sum = torch.zeros((), device=dev)
            correct = torch.zeros((), device=dev, dtype=torch.long)
            lr = recipe_.lr
            for a, b in track(bounds, total=len(bounds), desc=f"epoch {epoch}/{recipe_.epochs}"):
                batch = perm[a:b]
                xb = gather(batch)
                yb = y_dev[batch]
                if recipe_.augment:
                    xb = augment_batch(xb, recipe_.augment, generator=gen)
                lr = recipe_.lr_at(step, steps_per_epoch=len(bounds))
                set_lr(optimizer, lr)
                with autocast(prec, dev):
                    logits = net(to_input(tf(xb), channels_last))
                    loss = criterion(logits.float(), yb, epoch=epoch)
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                if ema is not None:
                    ema.update(net)
                step += 1
                if observer is not None:
                    observer.on_batch(epoch, idx[batch.cpu().numpy()], logits.detach().float())
                loss_sum += loss.detach() * (b - a)
                correct += (logits.detach().argmax(1) == yb).sum()
            mean_loss = float(loss_sum.item()) / n  # .item() syncs, so the timing is honest
            seconds = time.perf_counter() - t0
            check_finite(mean_loss, epoch=epoch)
            if observer is not None:
                observer.on_epoch_end(epoch, net)
            history.append(
                EpochStats(
                    epoch=epoch,
                    loss=mean_loss,
                    accuracy=int(correct.item()) / n,
                    seconds=seconds,
                    images_per_s=n / seconds if seconds > 0 else float("inf"),
                    lr=lr,
                )
            )
    if ema is not None:
        net = ema.module.to(memory_format=torch.contiguous_format)
    net.eval().cpu()
    return TrainResult(
        model=net,
        history=tuple(history),
        recipe=recipe_,
        seed=int(seed),
        num_train=n,
        num_classes=train.num_classes,
        in_channels=train.channels,
        model_name=model_name_of(model),
        device=str(dev),
        precision=prec,
    )


# --- inference -------------------------------------------------------------------------------


@torch.inference_mode()
def predict(
    model: nn.Module,
    data: ImageDataset | np.ndarray | torch.Tensor,
    *,
    transform: Transform | str,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    test_time_flip: bool = False,
) -> np.ndarray:
    """Logits of ``model`` for every image, in order.

    Parameters
    ----------
    model : any classifier; evaluated in eval mode and put back as it was (mode and device).
    data : an ImageDataset or ``(N, C, H, W)`` stored pixels (uint8, or float in [0, 1]).
    transform : the model's input transform, or a registry name for its own.
    batch_size : images per forward pass.
    precision : ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"auto"``; logits come back as
        float32 either way.
    test_time_flip : average the logits of each image and its mirror image (flip test-time
        augmentation, for architectures registered with ``test_time_flip``).

    Returns
    -------
    ``(N, K)`` float32 logits; ``(M, N, K)`` for stacked models (``StackedModels``).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    images = data.images if isinstance(data, ImageDataset) else data
    if not isinstance(images, np.ndarray | torch.Tensor) or images.ndim != 4:
        raise DataError(
            f"predict needs (N, C, H, W) images, got {getattr(images, 'shape', type(images))}; "
            "add a channel axis for grey images"
        )
    from thresher.precision import autocast, resolve_precision

    tf = transform_for(transform) if isinstance(transform, str) else transform
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    first = next(iter(model.parameters()), None)
    home = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    batch_dim = int(getattr(model, "output_batch_dim", 0))
    model.to(dev).eval()
    try:
        outs = []
        with autocast(prec, dev):
            for a in range(0, images.shape[0], batch_size):
                # batch by batch: a memory-mapped set is read a batch at a time, never whole
                batch = (  # a memory map is read, not mapped
                    read_rows(images, slice(a, a + batch_size))
                    if isinstance(images, np.ndarray)
                    else images[a : a + batch_size]
                )
                x = tf(as_tensor(batch).to(dev))
                logits = model(x).float()
                if test_time_flip:
                    logits = (logits + model(x.flip(-1)).float()) / 2
                outs.append(logits.cpu())
    finally:
        model.to(home).train(was_training)
    return torch.cat(outs, dim=batch_dim).numpy()
