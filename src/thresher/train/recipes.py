"""Training recipes: optimiser, schedule, batch size, epochs and augmentation, found by name."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from thresher.errors import ConfigError
from thresher.registry import Registry

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
AUGMENTATIONS = ("crop", "flip", "translate")
CROP_PADDING = 4  # "crop" = zero-pad by 4 pixels, then a random crop back to the stored size
# "translate" = reflect-pad by 2 pixels, then a random crop (airbench's): a smaller shift with
# no black borders, which suits runs of a few epochs better than "crop".
TRANSLATE_PADDING = 2


@dataclass(frozen=True)
class Recipe:
    """How to train a model; validated on construction.

    Attributes:
        name: registry name, or ``"custom"``.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: peak learning rate (> 0).
        betas, eps: Adam's parameters (PyTorch/Keras defaults).
        momentum, nesterov: SGD's parameters.
        weight_decay: L2 penalty added to the gradient (both optimisers).
        batch_size: images per step (>= 1).
        epochs: passes over the training set (>= 1).
        schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` (both decay to 0 over the run,
            per step; ``linear`` after a warm-up is the one-cycle "triangle").
        warmup_epochs: linear warm-up from ``lr / steps`` to ``lr`` before the schedule starts.
        augment: any of ``"crop"`` (zero-pad 4 px + random crop), ``"translate"`` (reflect-pad
            2 px + random crop) and ``"flip"`` (horizontal).
        label_smoothing: cross-entropy label smoothing in [0, 1).
        loss: ``"ce"`` (cross-entropy, the default) or ``"ldam"`` (Cao et al. 2019), see
            :mod:`thresher.train.losses`.
        drw_epoch: first (1-based) epoch of deferred re-weighting with class-balanced weights;
            ``None`` = never.
        drw_beta: the class-balanced weights' ``beta``.
        ldam_max_margin, ldam_scale: LDAM's largest margin and its logit scale ``s``.
        head: the classifier head, ``"linear"`` (the architecture's own, the default) or
            ``"cosine"`` (``ldam_scale`` times cosine logits, as LDAM is defined; needs
            ``loss="ldam"``), see :mod:`thresher.models.heads`.
        precision: ``"fp32"`` (default), ``"bf16"``, ``"fp16"`` or ``"auto"``
            (:mod:`thresher.precision`).
        ema_decay: keep an exponential moving average of the weights and batch-norm statistics,
            updated after every step with this decay, and return it as the trained model;
            ``0`` (default) = off.
        norm_lr_scale: learning-rate multiplier for the parameters of normalisation layers
            (batch norm's shifts and scales), whose weight decay is divided by it so that they
            decay at the same rate per step as the rest (airbench's ``bias_scaler``: batch
            norm's shifts learn 64 times faster). ``1`` (default) = one learning rate for all.
    """

    name: str = "custom"
    optimizer: str = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    batch_size: int = 64
    epochs: int = 15
    schedule: str = "constant"
    warmup_epochs: int = 0
    augment: tuple[str, ...] = ()
    label_smoothing: float = 0.0
    loss: str = "ce"
    drw_epoch: int | None = None
    drw_beta: float = 0.9999
    ldam_max_margin: float = 0.5
    ldam_scale: float = 30.0
    precision: str = "fp32"
    ema_decay: float = 0.0
    head: str = "linear"
    norm_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(self.augment))
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; use one of {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}"
            )
        bad_aug = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad_aug:
            raise ConfigError(
                f"unknown augmentation {bad_aug[0]!r}; use any of {', '.join(AUGMENTATIONS)}"
            )
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ConfigError(f"epochs must be an integer >= 1, got {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if not _is_int(self.warmup_epochs) or not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"warmup_epochs must be an integer in [0, epochs={self.epochs}), got "
                f"{self.warmup_epochs!r}; shorten the warm-up or train longer"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.eps > 0:
            raise ConfigError(f"eps must be > 0, got {self.eps!r}")
        if not self.momentum >= 0:
            raise ConfigError(f"momentum must be >= 0, got {self.momentum!r}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ConfigError("nesterov needs optimizer='sgd' with momentum > 0; set momentum")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        from thresher.precision import PRECISIONS

        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)}"
            )
        if not (isinstance(self.ema_decay, int | float) and 0 <= self.ema_decay < 1):
            raise ConfigError(
                f"ema_decay must be in [0, 1) (0 = no weight averaging), got {self.ema_decay!r}"
            )
        if not (
            isinstance(self.norm_lr_scale, int | float)
            and math.isfinite(self.norm_lr_scale)
            and self.norm_lr_scale > 0
        ):
            raise ConfigError(
                f"norm_lr_scale must be a positive number (1 = no scaling), got "
                f"{self.norm_lr_scale!r}"
            )
        self._check_loss()

    def _check_loss(self) -> None:
        from thresher.train.losses import LOSSES

        if self.loss not in LOSSES:
            raise ConfigError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        if self.drw_epoch is not None and (not _is_int(self.drw_epoch) or self.drw_epoch < 1):
            raise ConfigError(f"drw_epoch must be an integer >= 1 or None, got {self.drw_epoch!r}")
        if not 0 <= self.drw_beta < 1:
            raise ConfigError(f"drw_beta must be in [0, 1), got {self.drw_beta!r}")
        if not (self.ldam_max_margin > 0 and self.ldam_scale > 0):
            raise ConfigError("ldam_max_margin and ldam_scale must be > 0; use 0.5 and 30")
        if self.loss == "ldam" and self.label_smoothing:
            raise ConfigError("LDAM does not use label smoothing; set label_smoothing=0")
        from thresher.models.heads import check_head

        if check_head(self.head) == "cosine" and self.loss != "ldam":
            raise ConfigError(
                "the cosine head belongs to LDAM (its logits are ldam_scale times cosines, the "
                "units of LDAM's margins); use loss='ldam' with head='cosine', or head='linear'"
            )

    @property
    def head_scale(self) -> float:
        """What a cosine head multiplies its cosines by: LDAM's ``s`` (1 for other heads)."""
        return self.ldam_scale if self.head == "cosine" else 1.0

    # --- overrides ---------------------------------------------------------------------------
    def replace(self, **overrides: Any) -> Recipe:
        """A copy with ``overrides`` applied and validated (``ConfigError`` on bad values).

        Shortening ``epochs`` below the warm-up without giving ``warmup_epochs`` keeps the
        warm-up's share of the run (rounded down), so ``RECIPES.get("cifar-resnet")
        .replace(epochs=2)`` is a valid short trial run.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(
                f"unknown recipe field {unknown[0]!r}; valid fields: {', '.join(sorted(fields))}"
            )
        if (
            "epochs" in overrides
            and "warmup_epochs" not in overrides
            and _is_int(overrides["epochs"])
            and overrides["epochs"] >= 1
            and self.warmup_epochs >= overrides["epochs"]
        ):
            overrides["warmup_epochs"] = self.warmup_epochs * overrides["epochs"] // self.epochs
        return dataclasses.replace(self, **overrides)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`to_dict` (lists back to tuples); unknown fields are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise ConfigError(f"unknown recipe field(s) {unknown}; valid: {sorted(known)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()
        }
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for run manifests).

        Fields added after results were first stored (:data:`LATER_FIELDS`) are written only
        when they differ from their default: stored results are keyed by a hash of this dict,
        so a recipe that does not use them keeps the keys it had.
        """
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["augment"] = list(self.augment)
        for name, default in LATER_FIELDS.items():
            if d[name] == default:
                del d[name]
        return d

    # --- optimisation ------------------------------------------------------------------------
    def make_optimizer(self, params: Iterable[nn.Parameter] | nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimiser over ``params`` (elementwise, so stacked models train alike).

        Pass the model itself when ``norm_lr_scale != 1``: its normalisation layers' parameters
        then form their own group (:meth:`param_groups`); set the learning rate of every step
        with :func:`set_lr`, which keeps each group's scale.

        ``foreach=True``: one multi-tensor kernel per update instead of a Python loop over the
        parameters (PyTorch picks it only on CUDA by default). Measured with
        ``benchmarks/bench_optimizer.py`` on the CPU: the LeNet's optimiser step 7.8 -> 2.9 ms
        of a 50-65 ms step; ``fused=True`` gained less and was slower for ``cifar_fast``.
        """
        groups = self.param_groups(params)
        if self.optimizer == "adam":
            return torch.optim.Adam(
                groups,
                lr=self.lr,
                betas=self.betas,
                eps=self.eps,
                weight_decay=self.weight_decay,
                foreach=True,
            )
        return torch.optim.SGD(
            groups,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            nesterov=self.nesterov,
            foreach=True,
        )

    def param_groups(self, params: Iterable[nn.Parameter] | nn.Module) -> list[dict[str, Any]]:
        """Optimiser groups, each with its ``lr_scale``: one group, or with ``norm_lr_scale !=
        1`` the trainable parameters of normalisation layers (batch, group, layer and instance
        norm) apart from the rest. Frozen parameters are left out."""
        if not isinstance(params, nn.Module):
            if self.norm_lr_scale != 1:
                raise ConfigError(
                    "norm_lr_scale needs the model to find its normalisation layers; pass the "
                    "module to make_optimizer, not its parameters"
                )
            return [{"params": [p for p in params if p.requires_grad], "lr_scale": 1.0}]
        norm_ids = {
            id(p) for m in params.modules() if isinstance(m, NORM_LAYERS) for p in m.parameters()
        }
        trainable = [p for p in params.parameters() if p.requires_grad]
        if self.norm_lr_scale == 1:
            return [{"params": trainable, "lr_scale": 1.0}]
        norms = [p for p in trainable if id(p) in norm_ids]
        rest = [p for p in trainable if id(p) not in norm_ids]
        scale = float(self.norm_lr_scale)
        groups = [{"params": rest, "lr_scale": 1.0}]
        if norms:
            groups.append(
                {
                    "params": norms,
                    "lr_scale": scale,
                    "lr": self.lr * scale,
                    "weight_decay": self.weight_decay / scale,
                }
            )
        return groups

    def lr_at(self, step: int, *, steps_per_epoch: int) -> float:
        """Learning rate for optimiser step ``step`` (0-based) of the run."""
        total = self.epochs * steps_per_epoch
        warmup = self.warmup_epochs * steps_per_epoch
        if step < warmup:
            return self.lr * (step + 1) / warmup
        if self.schedule == "constant":
            return self.lr
        progress = (step - warmup) / max(1, total - warmup)
        if self.schedule == "linear":
            return self.lr * max(0.0, 1.0 - progress)
        return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


#: field -> default, for fields :meth:`Recipe.to_dict` leaves out at their default
LATER_FIELDS: dict[str, Any] = {"head": "linear", "norm_lr_scale": 1.0}

#: layers whose parameters ``Recipe.norm_lr_scale`` applies to
NORM_LAYERS = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of a step: ``lr`` times each group's ``lr_scale``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


RECIPES: Registry[Recipe] = Registry("recipe", error=ConfigError)


def register_recipe(recipe: Recipe) -> Recipe:
    """Add ``recipe`` under ``recipe.name``."""
    return RECIPES.register(recipe.name, recipe)


def get_recipe(recipe: str | Recipe) -> Recipe:
    """``recipe`` itself, or the registered recipe of that name."""
    return recipe if isinstance(recipe, Recipe) else RECIPES.get(recipe)


# LRP-GUS (seed 000), Table 2 text: Adam with Keras defaults, batch 64, 15 epochs.
register_recipe(Recipe(name="paper-mnist", optimizer="adam", lr=1e-3, batch_size=64, epochs=15))
# LRP-GUS, Table 3 text: Adam defaults, batch 128, 15 epochs.
register_recipe(Recipe(name="paper-fmnist", optimizer="adam", lr=1e-3, batch_size=128, epochs=15))
# He et al. 2016 / Cao et al. 2019 (LDAM) CIFAR ResNets: SGD 0.1, momentum 0.9, wd 1e-4,
# batch 128, 200 epochs, linear warm-up for 5 epochs, pad-4 crop + horizontal flip.
register_recipe(
    Recipe(
        name="cifar-resnet",
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        batch_size=128,
        epochs=200,
        schedule="cosine",
        warmup_epochs=5,
        augment=("crop", "flip"),
    )
)
# For ``cifar_small`` (not from a paper): Adam with a cosine decay, the usual CIFAR augmentation.
register_recipe(
    Recipe(
        name="cifar-small",
        optimizer="adam",
        lr=3e-3,
        batch_size=128,
        epochs=15,
        schedule="cosine",
        augment=("crop", "flip"),
    )
)
# Cao et al. 2019 long-tailed CIFAR: LDAM with deferred re-weighting from epoch 160 of 200.
# Cao et al.'s LDAM is defined on cosine logits (their NormedLinear head): head="cosine".
register_recipe(
    get_recipe("cifar-resnet").replace(
        name="cifar-resnet-ldam-drw", loss="ldam", drw_epoch=160, head="cosine"
    )
)
# For the detectors ``det_tiny``/``det_tiny_fcos`` (not from a paper; measured on the MNIST
# detection canvases): AdamW with a short warm-up (focal-loss heads diverge without one) and a
# cosine decay; no flips (digits are not mirror-symmetric).
register_recipe(
    Recipe(
        name="det-tiny",
        optimizer="adam",
        lr=2e-3,
        weight_decay=0.0,
        batch_size=32,
        epochs=12,
        schedule="cosine",
        warmup_epochs=1,
    )
)
# For ``cifar_fast`` (airbench-like; not from a paper): SGD-Nesterov, linear one-cycle, label
# smoothing 0.2, weight averaging, bf16 where the machine has it. Tuned on the shared CIFAR-10
# copy (docs/foundation.md, "The fast CIFAR net").
register_recipe(
    Recipe(
        name="cifar-fast",
        optimizer="sgd",
        lr=0.4,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        batch_size=512,
        epochs=10,
        schedule="linear",
        warmup_epochs=2,
        augment=("crop", "flip"),
        label_smoothing=0.2,
        ema_decay=0.99,
        precision="auto",
    )
)
# For ``cifar_airbench``: airbench94's optimiser (Jordan 2024) in PyTorch's terms for a mean
# loss. airbench sums the loss over batches of 1,024 and states lr 11.5 and weight decay 0.0153
# "per 1,024 examples", decoupled from Nesterov momentum 0.85: that is lr 1.5 on the mean loss
# and weight decay 1.33e-3 (the same decay per step), with batch norm's shifts at 64 times the
# learning rate (``norm_lr_scale``). Its 2-pixel reflect translation, label smoothing 0.2; our
# EMA of the weights stands in for its lookahead, our linear warm-up and decay for its schedule
# (0.2 -> 1 over 23% of the steps, then down to 0.07).
register_recipe(
    Recipe(
        name="cifar-airbench",
        optimizer="sgd",
        lr=1.5,
        momentum=0.85,
        nesterov=True,
        weight_decay=1.33e-3,
        norm_lr_scale=64.0,
        batch_size=1024,
        epochs=10,
        schedule="linear",
        warmup_epochs=2,
        augment=("translate", "flip"),
        label_smoothing=0.2,
        ema_decay=0.99,
        precision="auto",
    )
)
# For tests and demos: a couple of quick epochs.
register_recipe(Recipe(name="quick", optimizer="adam", lr=1e-3, batch_size=64, epochs=2))
