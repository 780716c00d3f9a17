"""Train many models of one architecture: stacked into one module (GPU) or one after another.

Stacked training gives each model its own seeded batch order, augmentation and (optionally) its
own subset, and minimises the sum over models of each model's mean cross-entropy. Each model's
parameters get exactly the gradient of its own loss, and Adam/SGD act elementwise, so every
model follows the same path as if trained alone (up to float rounding and dropout masks, which
are drawn for the whole stack at once).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from thresher.data.types import ImageDataset
from thresher.device import as_tensor, resolve_device
from thresher.errors import ConfigError
from thresher.progress import track
from thresher.train.augment import apply_augmentation, draw_augmentation, join_draws
from thresher.train.recipes import Recipe, set_lr
from thresher.train.stacking import check_stacked, stack_models, unstack
from thresher.train.trainer import (
    EpochStats,
    ModelLike,
    TrainResult,
    Transform,
    batch_bounds,
    build_model,
    check_finite,
    check_indices,
    check_trainable,
    data_generator,
    fit,
    images_to_device,
    model_name_of,
    resolve_recipe,
    resolve_transform,
    seeded_rng,
)

StackMode = bool | Literal["auto"]


class UnstackableError(ConfigError):
    """The architecture cannot be trained stacked (``stack="auto"`` then trains one by one)."""


def stack_by_default(device: torch.device) -> bool:
    """What ``stack="auto"`` does: stack on CUDA only.

    Measured with ``benchmarks/bench_ensemble.py`` on 2 CPU cores, 8 models x 4096 images x 1
    epoch: stacked/one-by-one throughput 0.65x for mnist_lenet and 0.84x for fmnist_cnn (grouped
    convolutions are slow on the CPU), so the CPU trains one model after another.
    """
    return device.type == "cuda"


def train_many(
    model: ModelLike,
    train: ImageDataset,
    *,
    recipe: str | Recipe | None = None,
    seeds: Sequence[int],
    subsets: Sequence[np.ndarray] | None = None,
    device: str | torch.device | None = None,
    stack: StackMode = "auto",
    transform: Transform | str | None = None,
    max_stack: int | None = None,
) -> list[TrainResult]:
    """Train one model per seed, stacked side by side or one after another.

    Parameters
    ----------
    model : registry name, builder or module (see :func:`~thresher.train.fit`).
    train : labelled training images.
    recipe : recipe or its name; default the architecture's.
    seeds : one seed per model (initial weights, batch order, augmentation).
    subsets : one ``(K_i,)`` array of positions in ``train`` per model; default all images.
        Models whose subsets have equal sizes are stacked together.
    device : default CUDA when present.
    stack : ``True`` stacks (``ConfigError`` if the architecture cannot be), ``False`` trains one
        after another, ``"auto"`` stacks on CUDA and falls back to one after another when the
        architecture cannot be stacked.
    max_stack : at most this many models in one stack (GPU memory); default no limit.

    Returns
    -------
    One :class:`TrainResult` per seed, in order; ``result.stacked`` says how it was trained.
    Sequential training gives exactly ``fit(model, train, seed=s, indices=subset)``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("train_many needs at least one seed; pass seeds=[0, 1, ...]")
    if subsets is not None and len(subsets) != len(seeds):
        raise ConfigError(
            f"{len(subsets)} subsets for {len(seeds)} seeds; give one subset per seed"
        )
    if stack not in (True, False, "auto"):
        raise ConfigError(f"stack must be True, False or 'auto', got {stack!r}")
    if max_stack is not None and max_stack < 1:
        raise ConfigError(f"max_stack must be >= 1, got {max_stack}")
    recipe_ = resolve_recipe(model, recipe)
    check_trainable(train)
    dev = resolve_device(device)
    positions = [
        check_indices(None if subsets is None else subsets[i], len(train), what=f"subset {i}")
        for i in range(len(seeds))
    ]
    use_stack = stack_by_default(dev) if stack == "auto" else bool(stack)
    unstackable = _unstackable_recipe(recipe_)
    if use_stack and unstackable:
        if stack is True:
            raise ConfigError(f"{unstackable}; pass stack=False or stack='auto'")
        use_stack = False
    if use_stack and len(seeds) > 1:
        try:
            return _train_stacked(
                model, train, recipe_, seeds, positions, dev, transform, max_stack
            )
        except UnstackableError:
            if stack is True:
                raise
    return [
        fit(model, train, recipe=recipe_, seed=s, device=dev, transform=transform, indices=p)
        for s, p in zip(seeds, positions, strict=True)
    ]


def _unstackable_recipe(recipe: Recipe) -> str:
    """Why the stacked path cannot train ``recipe`` ("" when it can)."""
    if recipe.loss != "ce":
        # The stacked path trains with cross-entropy only; LDAM-DRW needs per-model criteria
        # (and the cosine head, which only LDAM uses).
        return f"stacked training supports the 'ce' loss only, not {recipe.loss!r}"
    if recipe.ema_decay:
        return "stacked training does not keep weight averages (ema_decay)"
    return ""


def _train_stacked(
    model: ModelLike,
    train: ImageDataset,
    recipe: Recipe,
    seeds: list[int],
    positions: list[np.ndarray],
    dev: torch.device,
    transform: Transform | str | None,
    max_stack: int | None,
) -> list[TrainResult]:
    # Group models by subset size (one stack shares batch boundaries), keep the caller's order.
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(positions):
        groups.setdefault(len(p), []).append(i)
    chunks = []
    for members in groups.values():
        step = max_stack or len(members)
        chunks += [members[a : a + step] for a in range(0, len(members), step)]
    results: list[TrainResult | None] = [None] * len(seeds)
    for members in chunks:
        trained = _fit_stack(
            model,
            train,
            recipe=recipe,
            seeds=[seeds[i] for i in members],
            positions=[positions[i] for i in members],
            dev=dev,
            transform=transform,
        )
        for i, res in zip(members, trained, strict=True):
            results[i] = res
    return [r for r in results if r is not None]


def _fit_stack(
    model: ModelLike,
    train: ImageDataset,
    *,
    recipe: Recipe,
    seeds: list[int],
    positions: list[np.ndarray],
    dev: torch.device,
    transform: Transform | str | None,
) -> list[TrainResult]:
    """Train ``len(seeds)`` models with equal-sized subsets as one stacked module."""
    from thresher.precision import autocast, resolve_precision

    prec = resolve_precision(recipe.precision, dev)
    scaler = torch.amp.GradScaler("cuda") if prec == "fp16" else None
    labels = check_trainable(train)
    tf = resolve_transform(model, transform)
    nets = [
        build_model(model, seed=s, num_classes=train.num_classes, in_channels=train.channels)
        for s in seeds
    ]
    if callable(getattr(nets[0], "init_from_data", None)):
        raise UnstackableError(
            f"{type(nets[0]).__name__} initialises itself from the data, which stacked "
            "training does not do"
        )
    try:
        stacked = stack_models(nets)
        probe = tf(as_tensor(train.images[positions[0][:2]]))
        check_stacked(stacked, nets, probe)
    except ConfigError as err:
        raise UnstackableError(str(err)) from err
    del nets
    stacked.to(dev).train()

    # Upload only the images some model uses, once; each model indexes into them.
    union = np.unique(np.concatenate(positions))
    x_dev = images_to_device(train.images[union], dev)
    y_dev = torch.from_numpy(labels[union]).to(dev)
    where = torch.from_numpy(np.stack([np.searchsorted(union, p) for p in positions])).to(dev)
    m, n = where.shape
    gens = [data_generator(s, dev) for s in seeds]
    bounds = batch_bounds(n, recipe.batch_size)
    optimizer = recipe.make_optimizer(stacked)
    histories: list[list[EpochStats]] = [[] for _ in range(m)]
    step = 0
    with seeded_rng(seeds[0], dev):
        for epoch in range(1, recipe.epochs + 1):
            t0 = time.perf_counter()
            # The same draws, in the same order, as fit() makes from each model's generator.
            perms = torch.stack([torch.randperm(n, generator=g, device=dev) for g in gens])
            order = torch.gather(where, 1, perms)  # (M, n) rows of x_dev
            loss_sum = torch.zeros(m, device=dev)
            correct = torch.zeros(m, device=dev, dtype=torch.long)
            lr = recipe.lr
            desc = f"{m} models, epoch {epoch}/{recipe.epochs}"
            for a, b in track(bounds, total=len(bounds), desc=desc):
                rows = order[:, a:b]  # (M, B)
                xb = x_dev[rows]  # (M, B, C, H, W)
                yb = y_dev[rows]  # (M, B)
                xb = xb.flatten(0, 1)  # (M * B, C, H, W), model-major
                if recipe.augment:
                    # Each model draws from its own generator (as alone); one pass applies all.
                    draws = join_draws(
                        [
                            draw_augmentation(b - a, recipe.augment, generator=g, device=dev)
                            for g in gens
                        ]
                    )
                    xb = apply_augmentation(xb, recipe.augment, draws)
                x_in = tf(xb)
                x_in = x_in.reshape(m, b - a, *x_in.shape[1:])
                lr = recipe.lr_at(step, steps_per_epoch=len(bounds))
                set_lr(optimizer, lr)
                with autocast(prec, dev):
                    logits = stacked(x_in).float()  # (M, B, K)
                per_sample = F.cross_entropy(
                    logits.flatten(0, 1),
                    yb.flatten(),
                    reduction="none",
                    label_smoothing=recipe.label_smoothing,
                ).view(m, b - a)
                model_loss = per_sample.mean(1)  # (M,): each model's own mean loss
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(model_loss.sum()).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    model_loss.sum().backward()
                    optimizer.step()
                step += 1
                loss_sum += model_loss.detach() * (b - a)
                correct += (logits.detach().argmax(-1) == yb).sum(1)
            losses = (loss_sum / n).tolist()
            accs = (correct.double() / n).tolist()
            seconds = time.perf_counter() - t0
            for i in range(m):
                check_finite(losses[i], epoch=epoch)
                histories[i].append(
                    EpochStats(
                        epoch=epoch,
                        loss=float(losses[i]),
                        accuracy=float(accs[i]),
                        seconds=seconds,
                        images_per_s=n / seconds if seconds > 0 else float("inf"),
                        lr=lr,
                    )
                )
    singles = unstack(stacked.eval())
    return [
        TrainResult(
            model=net.eval(),
            history=tuple(hist),
            recipe=recipe,
            seed=s,
            num_train=n,
            num_classes=train.num_classes,
            in_channels=train.channels,
            model_name=model_name_of(model),
            device=str(dev),
            stacked=True,
            precision=prec,
        )
        for net, hist, s in zip(singles, histories, seeds, strict=True)
    ]
