"""Workflows over run directories: the public API that the CLI (and later the app) call.

A training run records *how* to rebuild its data (data set name, root, limit, long-tail
parameters) and model (registry name, classes, channels, weights), so every later step
(``embed``, ``evaluate``, ...) works from the run directory alone.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from thresher.data import ImageDataset
from thresher.errors import ConfigError, RunError
from thresher.store import Run

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class DataSpec:
    """How to rebuild a run's data: ``load_dataset(name, root=..., split=...)`` plus options.

    ``limit`` and the long-tail options apply to the training split only; the test split is
    always whole, so accuracies stay comparable.
    """

    name: str
    root: str | None = None
    limit: int | None = None
    seed: int = 0
    longtail_ratio: float | None = None
    longtail_kind: str = "exp"

    def resolved(self) -> DataSpec:
        """Pin the data root (parameter or THRESHER_DATA) so the run can be reopened anywhere."""
        root = self.root or os.environ.get("THRESHER_DATA")
        name = self.name
        if Path(name).exists():  # a user path: store it absolute
            name = str(Path(name).resolve())
        return DataSpec(
            name=name,
            root=str(Path(root).resolve()) if root else None,
            limit=self.limit,
            seed=self.seed,
            longtail_ratio=self.longtail_ratio,
            longtail_kind=self.longtail_kind,
        )

    def load(self, split: str = "train") -> ImageDataset:
        from thresher.data import load_dataset, make_long_tailed

        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")
        is_train = split == "train"
        ds = load_dataset(
            self.name,
            root=self.root,
            split=split,
            limit=self.limit if is_train else None,
            seed=self.seed,
        )
        if is_train and self.longtail_ratio is not None:
            if self.longtail_kind not in ("exp", "step"):
                raise ConfigError(
                    f"long-tail kind must be 'exp' or 'step', got {self.longtail_kind!r}"
                )
            kind: Literal["exp", "step"] = "exp" if self.longtail_kind == "exp" else "step"
            ds = make_long_tailed(ds, ratio=self.longtail_ratio, kind=kind, seed=self.seed)
        return ds


@dataclass(frozen=True)
class TrainRunResult:
    """What ``train_run`` produced (shared by the CLI's table and its ``--json``)."""

    run_dir: str
    dataset: str
    model: str
    recipe: str
    epochs: int
    train_size: int
    test_size: int
    test_accuracy: float
    per_class_f1: list[float]
    seconds: float
    images_per_second: float
    device: str
    precision: str = "fp32"
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_run(
    out: str | os.PathLike[str],
    *,
    data: DataSpec,
    model: str,
    recipe: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    precision: str | None = None,
) -> TrainRunResult:
    """Train ``model`` on ``data``'s training split, test it, and store it all in ``out``.

    ``precision`` (auto, fp32, bf16, fp16) overrides the recipe's and is stored in the run's
    recipe, so later retraining (evaluate, compare, reduce) uses it too; ``auto`` is resolved
    to what this device runs before it is stored."""
    from thresher.device import resolve_device
    from thresher.evaluate import class_metrics
    from thresher.models import model_spec, transform_for, uses_test_time_flip
    from thresher.train import fit, get_recipe, predict, save_checkpoint

    spec = model_spec(model)  # unknown model: fail before any data is read
    rec = get_recipe(recipe or spec.recipe)
    if epochs is not None:
        rec = rec.replace(epochs=epochs)
    data = data.resolved()
    dev = resolve_device(device)
    if precision is not None:
        from thresher.precision import resolve_precision

        rec = rec.replace(precision=resolve_precision(precision, dev))
    train = data.load("train")
    test = data.load("test")
    _check_compatible(train, test)
    transform = transform_for(model)
    run = Run.create(
        out,
        overwrite=overwrite,
        config={
            "data": asdict(data),
            "model": {
                "name": model,
                "num_classes": train.num_classes,
                "in_channels": train.channels,
            },
            "classes": list(train.classes),
            "recipe": rec.to_dict(),
            "seed": seed,
        },
        inputs={"train": train.fingerprint(), "test": test.fingerprint()},
    )
    start = time.perf_counter()
    result = fit(model, train, recipe=rec, seed=seed, device=dev, transform=transform)
    seconds = time.perf_counter() - start
    save_checkpoint(result, run.file(WEIGHTS))
    logits = predict(
        result.model,
        test,
        transform=transform,
        device=dev,
        precision=rec.precision,
        test_time_flip=uses_test_time_flip(model),
    )
    m = class_metrics(
        test.require_labels("testing"), logits.argmax(1), num_classes=train.num_classes
    )
    metrics = {
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "confusion": m.confusion,
        "classes": list(train.classes),
    }
    history = [asdict(h) for h in result.history]
    run.write_table("train_history.parquet", {k: [h[k] for h in history] for k in history[0]})
    run.write_json("test_metrics.json", metrics)
    out_result = TrainRunResult(
        run_dir=str(run.path),
        dataset=train.name,
        model=model,
        recipe=rec.name,
        epochs=rec.epochs,
        train_size=len(train),
        test_size=len(test),
        test_accuracy=m.accuracy,
        per_class_f1=[float(v) for v in m.f1],
        seconds=seconds,
        images_per_second=len(train) * rec.epochs / seconds,
        device=str(dev),
        precision=result.precision,
        history=history,
    )
    run.record_step("train", {k: v for k, v in out_result.to_dict().items() if k != "history"})
    return out_result


def _check_compatible(train: ImageDataset, test: ImageDataset) -> None:
    if train.classes != test.classes:
        raise RunError(
            f"train and test splits name different classes ({len(train.classes)} vs "
            f"{len(test.classes)}); both splits need the same class folders"
        )
    if train.images.shape[1:] != test.images.shape[1:]:
        raise RunError(
            f"train images are {train.images.shape[1:]} but test images are "
            f"{test.images.shape[1:]}; both splits need one image size"
        )


# --- reopening a run ------------------------------------------------------------------------
def open_run(path: str | os.PathLike[str]) -> Run:
    return Run.open(path)


def run_data_spec(run: Run) -> DataSpec:
    """The run's data spec. A pinned data root that no longer exists (a run moved to another
    machine, or committed to a repository) falls back to ``THRESHER_DATA``; the recorded
    fingerprints still have to match, so other data are refused, not used."""
    spec = DataSpec(**run.config["data"])
    fallback = os.environ.get("THRESHER_DATA")
    if spec.root and not Path(spec.root).exists() and fallback and Path(fallback).exists():
        spec = DataSpec(**{**asdict(spec), "root": str(Path(fallback).resolve())})
    return spec


def run_recipe(run: Run, *, epochs: int | None = None, precision: str | None = None) -> Any:
    """The run's training recipe with a command's ``epochs`` and ``precision`` overrides.

    ``precision`` is resolved for the default device first, so an unsupported one is refused
    here, before any data are read or results written."""
    from thresher.train import Recipe

    rec = Recipe.from_dict(run.config["recipe"])
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        rec = rec.replace(epochs=epochs)
    if precision is not None:
        from thresher.device import resolve_device
        from thresher.precision import resolve_precision

        resolve_precision(precision, resolve_device(None))
        rec = rec.replace(precision=precision)
    return rec


def random_like(run: Run, ids: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A seeded random subset of the run's training split with the same number of images of
    each class as ``ids``: the matched baseline a subset must beat."""
    from thresher.errors import DataError

    train = run_dataset(run, "train")
    labels = train.require_labels("a class-matched random subset")
    wanted = np.asarray(ids).astype(str)
    pos = np.flatnonzero(np.isin(train.ids, wanted))
    if pos.size != np.unique(wanted).size:
        raise DataError(
            f"{np.unique(wanted).size - pos.size} of the subset's ids are not in the run's "
            "training split; pass ids of this run's training data"
        )
    counts = np.bincount(labels[pos], minlength=train.num_classes)
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=int(n), replace=False)
        for c, n in enumerate(counts)
        if n
    ]
    return np.asarray(train.ids[np.sort(np.concatenate(picked))])


def run_dataset(run: Run, split: str = "train") -> ImageDataset:
    """The run's data, rebuilt and checked against the fingerprint recorded at training."""
    ds = run_data_spec(run).load(split)
    recorded = run.manifest["inputs"].get(split)
    if recorded is not None and recorded != ds.fingerprint():
        raise RunError(
            f"the {split} data of {run.path} changed since the run was made (fingerprint "
            "mismatch); restore the original files or train a new run"
        )
    return ds


def run_model(run: Run) -> nn.Module:
    """The run's trained model (eval mode, CPU)."""
    from thresher.train import load_checkpoint

    if "train" not in run.manifest["steps"]:
        raise RunError(f"{run.path} has no trained model; run `thresher train` into it first")
    return load_checkpoint(run.file(WEIGHTS))


def run_transform(run: Run) -> Any:
    from thresher.models import transform_for

    return transform_for(run.config["model"]["name"])


def run_input_shape(run: Run, ds: ImageDataset | None = None) -> tuple[int, ...]:
    """``(1, C, H, W)`` of what the run's model sees (after its input transform)."""
    ds = ds if ds is not None else run_dataset(run, "test")
    return tuple(run_transform(run)(torch.from_numpy(ds.images[:1])).shape)


# --- embed ------------------------------------------------------------------------------------
def embed_run(
    run: Run,
    *,
    layer: str | None = None,
    split: str = "train",
    reduce: Literal["flatten", "avgpool"] = "flatten",
    device: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    precision: str = "fp32",
) -> Any:
    """Extract (or reuse) embeddings of ``layer`` (penultimate by default) for ``split``.

    ``engine="ray"`` runs the extraction on a Ray cluster (``ray_address``, or a local one); both
    engines write and reuse the same cache, so the result is the same either way.
    ``precision`` other than fp32 is a separate cache entry (local engine only).
    """
    from thresher.embed import cached_extract, default_layer
    from thresher.models import model_spec

    if engine != "local":
        if precision != "fp32":
            raise ConfigError(
                f"--precision {precision} embeds on the local engine only; drop --engine ray "
                "or embed in fp32"
            )
        from thresher.distributed import embed_run_on, get_engine

        with get_engine(engine, address=ray_address) as eng:
            emb = embed_run_on(eng, run, layer=layer, split=split, reduce=reduce, device=device)
    else:
        net = run_model(run)
        ds = run_dataset(run, split)
        spec = model_spec(run.config["model"]["name"])
        shape = run_input_shape(run, ds)
        name = layer or default_layer(net, spec.feature_layer, input_shape=shape)
        emb = cached_extract(
            run,
            net,
            ds,
            layer=name,
            transform=run_transform(run),
            reduce=reduce,
            device=device,
            precision=precision,
        )
    name = emb.layer
    steps = run.manifest["steps"].get("embed", {})
    step = {"layer": name, "split": split, "reduce": reduce, "shape": list(emb.values.shape)}
    if precision != "fp32":
        step["precision"] = precision
    steps[f"{split}:{name}:{reduce}" + ("" if precision == "fp32" else f":{precision}")] = step
    run.record_step("embed", steps)
    return emb


# --- evaluate ---------------------------------------------------------------------------------
def evaluate_run(
    run: Run,
    *,
    subset_ids: np.ndarray | None,
    seeds: int = 5,
    epochs: int | None = None,
    device: str | None = None,
    name: str = "subset",
    engine: str = "local",
    ray_address: str | None = None,
    precision: str | None = None,
) -> Any:
    """Retrain the run's architecture on a subset of its training split with ``seeds`` seeds.

    ``engine="ray"`` trains the seeds as parallel Ray tasks; the tables are the same.
    ``precision`` overrides the run recipe's (auto, fp32, bf16, fp16).
    """
    from thresher.evaluate import evaluate

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    rec = run_recipe(run, epochs=epochs, precision=precision)
    if engine != "local":
        from thresher.distributed import evaluate_subsets_run, get_engine

        with get_engine(engine, address=ray_address) as eng:
            done = evaluate_subsets_run(
                eng, run, {name: subset_ids}, seeds=seeds, epochs=epochs, device=device,
                precision=precision,
            )  # fmt: skip
        return done[name]
    cfg = run.config
    train = run_dataset(run, "train")
    test = run_dataset(run, "test")
    result = evaluate(
        train,
        test,
        model=cfg["model"]["name"],
        recipe=rec,
        subset_ids=subset_ids,
        seeds=seeds,
        device=device,
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    run.write_table(f"evaluate/{safe}.parquet", result.to_table())
    run.write_json(f"evaluate/{safe}.json", result.to_dict())
    return result
