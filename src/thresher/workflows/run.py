"""The run directory's own objects: open a run, and rebuild its data, model, transform and recipe.

A training run records *how* to rebuild its data (data set name, root, limit, long-tail
parameters) and model (registry name, classes, channels, weights), so every later step works
from the run directory alone.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np
from torch import nn

from thresher.data import ImageDataset
from thresher.device import as_tensor
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


def run_recipe(
    run: Run,
    *,
    epochs: int | None = None,
    precision: str | None = None,
    device: str | None = None,
    check_device: bool = False,
) -> Any:
    """The run's training recipe with a command's ``epochs`` and ``precision`` overrides.

    ``precision`` is resolved for the default device first, so an unsupported one is refused
    here, before any data are read or results written. ``check_device``: also refuse when the
    precision the models would train with (the override, else the one stored in the run's
    recipe) cannot run on ``device`` (default: the default device), for commands that train
    on this machine."""
    from thresher.device import resolve_device
    from thresher.precision import resolve_precision
    from thresher.train import Recipe

    if is_embeddings_run(run):  # retraining needs the architecture, not the trained weights
        raise RunError(
            f"retraining (evaluate, compare, reduce) needs the model, but {run.path} was made "
            "from precomputed embeddings (thresher init --embeddings); make a run with the "
            f"model instead: {MODEL_COMMANDS}"
        )
    rec = Recipe.from_dict(run.config["recipe"])
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {epochs}")
        rec = rec.replace(epochs=epochs)
    if precision is not None:
        resolve_precision(precision, resolve_device(device if check_device else None))
        rec = rec.replace(precision=precision)
    elif check_device:
        dev = resolve_device(device)
        try:
            resolve_precision(rec.precision, dev)
        except ConfigError as err:
            # the stored precision, not one the user typed: say where it comes from
            raise ConfigError(
                f"{run.path} trains its models in {rec.precision} (stored in the run's recipe), "
                f"which cannot run here: {err}. Run this where {rec.precision} runs (the run's "
                "stored results stay comparable), or pass --precision fp32 to train in fp32 "
                "(those results are kept apart from the stored ones)"
            ) from None
    return rec


P = ParamSpec("P")
T = TypeVar("T")
# The splits decoded inside a `reusing_datasets()` block, by (run folder, split); None outside.
_DECODED: dict[tuple[str, str], ImageDataset] | None = None


@contextmanager
def reusing_datasets() -> Iterator[None]:
    """Inside this block :func:`run_dataset` decodes each run's split once and then returns the
    same (read-only) arrays: ``compare`` trains dozens of models on one run, and decoding
    CIFAR-10's 60,000 JPEGs took 7-20 s per model, longer than a GPU's training. Nested blocks
    share the outer one's datasets; all are released when the outermost block ends."""
    global _DECODED
    outer = _DECODED
    if outer is None:
        _DECODED = {}
    try:
        yield
    finally:
        _DECODED = outer


def decoding_once(func: Callable[P, T]) -> Callable[P, T]:
    """Run ``func`` inside :func:`reusing_datasets` (a decorator for many-model workflows)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with reusing_datasets():
            return func(*args, **kwargs)

    return wrapper


def run_dataset(run: Run, split: str = "train") -> ImageDataset:
    """The run's data, rebuilt and checked against the fingerprint recorded at training
    (decoded once per :func:`reusing_datasets` block)."""
    key = (str(run.path.resolve()), split)
    if _DECODED is not None and key in _DECODED:
        return _DECODED[key]
    ds = _decode_run_dataset(run, split)
    if _DECODED is not None:
        for array in (ds.images, ds.labels, ds.ids):
            if isinstance(array, np.ndarray):
                array.flags.writeable = False  # shared by every later caller: never changed
        _DECODED[key] = ds
    return ds


def _decode_run_dataset(run: Run, split: str) -> ImageDataset:
    if is_embeddings_run(run) and not has_images(run):
        raise RunError(
            f"{run.path} was made from precomputed embeddings without images; this step needs "
            "the images: make the run again with thresher init --embeddings ... --images DIR"
        )
    if split not in run.manifest["inputs"] and split == "test":
        raise RunError(
            f"{run.path} has no test split (its data have none); steps that retrain and test "
            "need one: give --data a folder with train/ and test/ split folders"
        )
    if run.config.get("pixels"):  # an image folder decoded once into the run, memory-mapped
        from thresher.data.pixels import load_pixel_cache

        ds = load_pixel_cache(run.file(f"pixels/{split}"))
    else:
        ds = run_data_spec(run).load(split)
    if is_embeddings_run(run):  # the images of the embedding rows, in their order
        from thresher.embed.cache import load_embeddings

        ds = ds.subset(load_embeddings(run, str(run.config["embeddings"]["key"])).ids)
    recorded = run.manifest["inputs"].get(split)
    if recorded is not None and recorded != ds.fingerprint():
        raise RunError(
            f"the {split} data of {run.path} changed since the run was made (fingerprint "
            "mismatch); restore the original files or train a new run"
        )
    return ds


MODEL_COMMANDS = "thresher train, or thresher init --model"


def has_images(run: Run) -> bool:
    """Whether the run can rebuild its images (a data spec, or a pixel cache in the run)."""
    return bool(run.config.get("data") or run.config.get("pixels"))


def is_embeddings_run(run: Run) -> bool:
    """A run made from precomputed embeddings (``thresher init --embeddings``): no model."""
    return run.config.get("origin") == "embeddings"


def require_model(run: Run, what: str) -> None:
    """Refuse, naming ``what`` (a command or step), when the run has no model."""
    if is_embeddings_run(run):
        raise RunError(
            f"{what} needs the model, but {run.path} was made from precomputed embeddings "
            "(thresher init --embeddings); make a run with the model instead: "
            f"{MODEL_COMMANDS}"
        )
    if not run.has_step("train"):
        raise RunError(
            f"{run.path} has no trained model; run `thresher train` into it first (or make "
            "the run from a model you have with `thresher init --model`)"
        )


def run_model(run: Run) -> nn.Module:
    """The run's model (trained by ``thresher train`` or given to ``thresher init``; eval
    mode, CPU)."""
    from thresher.train import load_checkpoint

    require_model(run, "this step")
    return load_checkpoint(run.file(WEIGHTS))


def run_transform(run: Run) -> Any:
    """The run's input transform: the architecture's own, or what ``thresher init`` stored
    (``--size``, ``--mean``, ``--std``)."""
    from thresher.models import transform_for

    return run_transform_override(run) or transform_for(run.config["model"]["name"])


def run_transform_override(run: Run) -> Any:
    """The transform ``thresher init`` stored for the run's model, or ``None`` (the
    architecture's own is used)."""
    from thresher.models import InputTransform

    stored = run.config.get("model", {}).get("transform")
    if not stored:
        return None
    size = stored.get("size")
    return InputTransform(
        mean=tuple(stored["mean"]),
        std=tuple(stored["std"]),
        size=None if size is None else (int(size[0]), int(size[1])),
    )


def run_input_shape(run: Run, ds: ImageDataset | None = None) -> tuple[int, ...]:
    """``(1, C, H, W)`` of what the run's model sees (after its input transform)."""
    ds = ds if ds is not None else run_dataset(run, "test")
    return tuple(run_transform(run)(as_tensor(ds.images[:1])).shape)
