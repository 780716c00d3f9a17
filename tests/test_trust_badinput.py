"""The bad-input catalogue: every case is refused with one clear message and changes nothing.

Each :class:`Case` builds some bad input (files in the user's data folder, a request against a
real run directory, a failing disk), runs one library call or one CLI command, and the test
asserts that

* the right :class:`~thresher.errors.ThresherError` is raised (CLI: exit code 2, one line on
  stderr starting ``error:``, no traceback),
* the message contains every ``fragments`` entry (the problem *and* the fix),
* the user's data folder and the run directory are byte-identical before and after, and
* no temporary file (``.tmp``/``.part``/``.partial``) is left anywhere.

To add a case, append one ``Case(...)`` to ``CASES`` (see docs/trust.md).
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thresher.errors import (
    ConfigError,
    DataError,
    LayerError,
    ModelError,
    RunError,
    ThresherError,
)
from trust_helpers import (
    cifar_batch,
    deny_writes_under,
    disk_full,
    idx_bytes,
    partial_files,
    pickle_bytes,
    png_bytes,
    tree_digest,
    write_cifar10_folder,
    write_idx_folder,
    write_image_folder,
)

Cli = Callable[[list[str]], tuple[int, str, str]]


@dataclass
class Ctx:
    """What a case may touch: the user's data folder, a private copy of a trained run, a
    folder for outputs, and the ``cli`` / ``monkeypatch`` fixtures."""

    data: Path
    run: Path
    out: Path
    cli: Cli
    monkeypatch: pytest.MonkeyPatch

    def open(self) -> Any:
        from thresher.workflows.run import open_run

        return open_run(self.run)


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: the test id.
        act: the library call that must raise ``error``; for a CLI case (``error is None``)
            it returns the argv of ``thresher``.
        error: the ThresherError subclass expected, or ``None`` for a CLI case.
        fragments: text the message must contain: what is wrong AND what to do.
        setup: prepares the bad input (writes into ``ctx.data``, patches the disk, ...).
    """

    id: str
    act: Callable[[Ctx], Any]
    error: type[ThresherError] | None
    fragments: tuple[str, ...]
    setup: Callable[[Ctx], None] = field(default=lambda ctx: None)


def _load(rel: str, split: str | None = "train") -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.data import load_dataset

        return load_dataset(ctx.data / rel, split=split)

    return act


def _cut(data: bytes, keep: float) -> bytes:
    return data[: int(len(data) * keep)]


def _images(n: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def _labels(n: int = 12, top: int = 10) -> np.ndarray:
    return np.random.default_rng(1).integers(0, top, n, dtype=np.uint8)


# --- loaders: IDX ----------------------------------------------------------------------------
def _idx(**kw: Any) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        write_idx_folder(ctx.data / "idx", **kw)

    return setup


def _idx_replace(name: str, blob: bytes) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        write_idx_folder(ctx.data / "idx")
        (ctx.data / "idx" / name).write_bytes(blob)

    return setup


def _idx_remove(name: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        write_idx_folder(ctx.data / "idx")
        (ctx.data / "idx" / name).unlink()

    return setup


FLOAT_IDX = (
    bytes([0, 0, 0x0D, 3])
    + bytes.fromhex("0000000c0000001c0000001c")
    + _images().astype(">f4").tobytes()
)
GZ_IMAGES = gzip.compress(idx_bytes(_images()), mtime=0)

LOADER_IDX = [
    Case(
        "idx-empty-images-file",
        _load("idx"),
        DataError,
        ("not an IDX file", "magic number 0xempty", "MNIST-style file"),
        _idx_replace("train-images-idx3-ubyte.gz", b""),
    ),
    Case(
        "idx-truncated-gzip",
        _load("idx"),
        DataError,
        ("train-images-idx3-ubyte.gz is truncated or corrupt", "download it again"),
        _idx_replace("train-images-idx3-ubyte.gz", _cut(GZ_IMAGES, 0.5)),
    ),
    Case(
        "idx-truncated-raw",
        _load("idx"),
        DataError,
        ("is truncated or corrupt", "header says (12, 28, 28)", "download it again"),
        _idx(images=_cut(idx_bytes(_images()), 0.7)),
    ),
    Case(
        "idx-trailing-bytes",
        _load("idx"),
        DataError,
        ("5 bytes too long", "download it again"),
        _idx(images=idx_bytes(_images()) + b"\x00" * 5),
    ),
    Case(
        "idx-wrong-magic",
        _load("idx"),
        DataError,
        ("not an IDX file (magic number 0x08030000)", "expected e.g. 0x00000803"),
        _idx(images=idx_bytes(_images(), magic=bytes([8, 3, 0, 0]))),
    ),
    Case(
        "idx-header-cut-short",
        _load("idx"),
        DataError,
        ("header cut short", "download it again"),
        _idx(images=bytes([0, 0, 8, 3, 0, 0])),
    ),
    Case(
        "idx-absurd-dimension-count",
        _load("idx"),
        DataError,
        ("truncated or corrupt", "download it again"),
        _idx(images=bytes([0, 0, 8, 200]) + b"\x00\x00\x00\x01" * 200),
    ),
    Case(
        "idx-image-label-count-mismatch",
        _load("idx"),
        DataError,
        ("has 12 images but", "has 10 labels", "same split and release"),
        _idx(n_images=12, n_labels=10),
    ),
    Case(
        "idx-labels-in-the-images-file",
        _load("idx"),
        DataError,
        ("expected (N, H, W) uint8 images, got (12,)", "is this an image file?"),
        _idx(images=idx_bytes(_labels())),
    ),
    Case(
        "idx-float-images",
        _load("idx"),
        DataError,
        ("expected (N, H, W) uint8 images, got (12, 28, 28) float32", "is this an image file?"),
        _idx(images=FLOAT_IDX),
    ),
    Case(
        "idx-missing-labels-file",
        _load("idx"),
        DataError,
        ("train-labels-idx1-ubyte[.gz] not found", "thresher data fetch mnist"),
        _idx_remove("train-labels-idx1-ubyte.gz"),
    ),
]


# --- loaders: CIFAR ----------------------------------------------------------------------------
def _cifar(test_batch: bytes) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        write_cifar10_folder(ctx.data / "cifar", test_batch=test_batch)

    return setup


def _batch(**overrides: Any) -> bytes:
    batch = cifar_batch(4, 9)
    batch.update({k.encode(): v for k, v in overrides.items()})
    return pickle_bytes(batch)


class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/thresher-pwned",))


GOOD_BATCH = pickle_bytes(cifar_batch(4, 9))

LOADER_CIFAR = [
    Case(
        "cifar-empty-batch-file",
        _load("cifar", "test"),
        DataError,
        ("test_batch is truncated or corrupt", "download it again"),
        _cifar(b""),
    ),
    Case(
        "cifar-truncated-batch",
        _load("cifar", "test"),
        DataError,
        ("test_batch is truncated or corrupt", "download it again"),
        _cifar(_cut(GOOD_BATCH, 0.6)),
    ),
    Case(
        "cifar-not-a-pickle",
        _load("cifar", "test"),
        DataError,
        ("test_batch is truncated or corrupt", "download it again"),
        _cifar(b"this is a text file\n" * 10),
    ),
    Case(
        "cifar-batch-is-a-list",
        _load("cifar", "test"),
        DataError,
        ("expected a dict of arrays, got list", "not a batch"),
        _cifar(pickle_bytes([1, 2, 3])),
    ),
    Case(
        "cifar-wrong-image-shape",
        _load("cifar", "test"),
        DataError,
        ("'data' should be (N, 3072) uint8, got (4, 100)", "not a CIFAR batch"),
        _cifar(_batch(data=np.zeros((4, 100), dtype=np.uint8))),
    ),
    Case(
        "cifar-ragged-image-rows",
        _load("cifar", "test"),
        DataError,
        ("'data' should be (N, 3072) uint8", "not a CIFAR batch"),
        _cifar(_batch(data=[[1, 2], [3]])),
    ),
    Case(
        "cifar-image-label-count-mismatch",
        _load("cifar", "test"),
        DataError,
        ("4 images but labels of shape (3,)", "download it again"),
        _cifar(_batch(labels=[1, 2, 3])),
    ),
    Case(
        "cifar-float-labels",
        _load("cifar", "test"),
        DataError,
        ("'labels' should hold integer class indices, got float64", "download it again"),
        _cifar(_batch(labels=[1.5, 2.0, 3.0, 4.0])),
    ),
    Case(
        "cifar-missing-labels-entry",
        _load("cifar", "test"),
        DataError,
        ("no 'labels' entry", "not a CIFAR batch"),
        _cifar(pickle_bytes({b"data": np.zeros((4, 3072), dtype=np.uint8)})),
    ),
    Case(
        "cifar-code-in-the-pickle",
        _load("cifar", "test"),
        DataError,
        ("refusing to unpickle", "system", "use the official one"),
        _cifar(pickle_bytes(_Evil())),
    ),
]


# --- loaders: image folders and archives --------------------------------------------------------
def _folder(mutate: Callable[[Path], None]) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        root = write_image_folder(ctx.data / "pics")
        mutate(root)

    return setup


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


def _write(rel: str, blob: bytes) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        p = ctx.data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blob)

    return setup


JPEG = png_bytes(fmt="JPEG")

LOADER_FOLDER = [
    Case(
        "folder-without-images",
        _load("empty"),
        DataError,
        ("no images in", "expected split/class/image files"),
        lambda ctx: (ctx.data / "empty" / "train" / "cat").mkdir(parents=True),
    ),
    Case(
        "folder-corrupt-jpeg",
        _load("pics"),
        DataError,
        ("cannot decode image train/dog/bad.jpg", "delete or replace that file"),
        _folder(lambda r: (r / "train" / "dog" / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")),
    ),
    Case(
        "folder-truncated-jpeg",
        _load("pics"),
        DataError,
        ("cannot decode image train/cat/half.jpg", "delete or replace that file"),
        _folder(lambda r: (r / "train" / "cat" / "half.jpg").write_bytes(_cut(JPEG, 0.5))),
    ),
    Case(
        "folder-empty-image-file",
        _load("pics"),
        DataError,
        ("cannot decode image train/cat/zero.png", "delete or replace that file"),
        _folder(lambda r: (r / "train" / "cat" / "zero.png").write_bytes(b"")),
    ),
    Case(
        "folder-images-of-two-sizes",
        _load("pics"),
        DataError,
        ("is 9x9 but", "all images must have one size", "resize them"),
        _folder(lambda r: (r / "train" / "dog" / "big.png").write_bytes(png_bytes((9, 9)))),
    ),
    Case(
        "archive-corrupt",
        _load("pics.tar.gz"),
        DataError,
        ("cannot read archive", "truncated or corrupt", "download or pack it again"),
        _write("pics.tar.gz", _cut(_tar({"train/cat/0.png": png_bytes()}), 0.5)),
    ),
    Case(
        "archive-member-escapes",
        _load("pics.tar.gz"),
        DataError,
        ("points outside the archive", "repack it with relative paths"),
        _write("pics.tar.gz", _tar({"train/cat/0.png": png_bytes(), "../evil.png": png_bytes()})),
    ),
    Case(
        "path-does-not-exist",
        _load("nowhere"),
        DataError,
        ("is neither a data set name", "nor an existing path", "check the spelling or the path"),
    ),
    Case(
        "plain-file-not-an-archive",
        _load("notes.txt"),
        DataError,
        ("is a file but not a tar archive", "give a folder"),
        _write("notes.txt", b"hello"),
    ),
]


# --- models and layers -------------------------------------------------------------------------
def _fit_module(in_channels: int, num_classes: int) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.models import create_model
        from thresher.train import fit
        from thresher.workflows.run import run_dataset

        ds = run_dataset(ctx.open(), "train")
        net = create_model("mnist_lenet", num_classes=num_classes, in_channels=in_channels)
        return fit(net, ds, recipe="paper-mnist", seed=0, device="cpu", transform="mnist_lenet")

    return act


def _create(name: str, **kw: Any) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.models import create_model

        return create_model(name, **{"num_classes": 10, **kw})

    return act


MODELS_LAYERS = [
    Case(
        "model-unknown-name",
        _create("lenett"),
        ModelError,
        ("unknown model 'lenett'", "valid:", "mnist_lenet"),
    ),
    Case(
        "model-zero-input-channels",
        _create("mnist_lenet", in_channels=0),
        ConfigError,
        ("in_channels must be >= 1, got 0",),
    ),
    Case(
        "model-rgb-net-given-two-channels",
        _create("efficientnet_lite0", in_channels=2),
        ModelError,
        ("takes 1 or 3 channels, not 2", "convert the images to grey or RGB"),
    ),
    Case(
        "model-one-class",
        _create("mnist_lenet", num_classes=1),
        ConfigError,
        ("num_classes must be >= 2, got 1", "needs two classes"),
    ),
    Case(
        "model-built-for-rgb-trained-on-grey",
        _fit_module(in_channels=3, num_classes=10),
        ModelError,
        ("cannot take digits/train's images of shape (1, 8, 8)", "in_channels=1"),
    ),
    Case(
        "model-built-for-fewer-classes",
        _fit_module(in_channels=1, num_classes=3),
        ModelError,
        ("outputs (1, 3) logits but digits/train has 10 classes", "num_classes=10"),
    ),
    Case(
        "layer-unknown-name",
        lambda ctx: __import__("thresher.workflows.embed").workflows.embed.embed_run(
            ctx.open(), layer="conv9"
        ),
        LayerError,
        ("model has no layer 'conv9'", "see `thresher layers`"),
    ),
    Case(
        "layer-unknown-name-on-a-module",
        lambda ctx: __import__("thresher.embed").embed.resolve_layer(
            __import__("thresher.models").models.create_model("resnet20", num_classes=10),
            "layer9.0",
        ),
        LayerError,
        ("no layer 'layer9.0'", "did you mean", "pick one of these names"),
    ),
]


# --- embeddings and filter ---------------------------------------------------------------------
def _x(n: int = 60, d: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)


def _with(value: float) -> np.ndarray:
    x = _x()
    x[7, 2] = value
    return x


def _filter(x: Any = None, **kw: Any) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.filter import filter_dataset

        return filter_dataset(_x() if x is None else x, **kw)

    return act


def _run_filter(**kw: Any) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.workflows.filter import FilterSettings, run_filter

        return run_filter(ctx.open(), FilterSettings(**kw), cloud=False)

    return act


def _no_embeddings(ctx: Ctx) -> None:
    shutil.rmtree(ctx.run / "embeddings")


EMBED_FILTER = [
    Case(
        "embeddings-with-nan",
        _filter(_with(np.nan)),
        DataError,
        ("embedding of id '7' contains NaN or inf", "re-extract the embeddings"),
    ),
    Case(
        "embeddings-with-inf",
        _filter(_with(np.inf)),
        DataError,
        ("embedding of id '7' contains NaN or inf", "drop those rows"),
    ),
    Case(
        "embeddings-with-nan-uniqueness-baseline",
        lambda ctx: __import__("thresher.filter").filter.uniqueness(_with(-np.inf), keep=0.5),
        DataError,
        ("contains NaN or inf", "re-extract the embeddings"),
    ),
    Case(
        "filter-outliers-above-one",
        _filter(outliers=5.0),
        ConfigError,
        ("outliers must be a fraction in [0, 1), got 5", "for 5% pass 0.05"),
    ),
    Case(
        "filter-negative-similar",
        _filter(similar=-0.1),
        ConfigError,
        ("similar must be a fraction in [0, 1), got -0.1",),
    ),
    Case(
        "filter-percentages-sum-over-100",
        _filter(outliers=0.6, similar=0.5),
        ConfigError,
        ("removes everything", "keep their sum below 1"),
    ),
    Case(
        "filter-fewer-items-than-neighbours",
        _filter(_x(4), outliers=0.25, similar=0.0),
        ConfigError,
        ("has 4 items but the outlier score needs more than k=10", "lower k"),
    ),
    Case(
        "filter-class-smaller-than-k-plus-1",
        _filter(labels=np.r_[np.zeros(56, int), np.ones(4, int)], per_class=True, outliers=0.3),
        ConfigError,
        ("class 1 has 4 items", "lower k or turn per_class off"),
    ),
    Case(
        "filter-duplicate-ids",
        _filter(ids=[f"a{i % 30}" for i in range(60)]),
        DataError,
        ("id 'a0' occurs 2 times", "ids must be unique"),
    ),
    Case(
        "filter-single-item",
        _filter(_x(1)),
        DataError,
        ("got 1 item(s); filtering needs at least 2", "pass the whole data set"),
    ),
    Case(
        "filter-per-class-without-labels",
        _filter(per_class=True),
        ConfigError,
        ("per_class=True needs class labels", "per_class=False"),
    ),
    Case(
        "random-baseline-keeps-nothing",
        lambda ctx: __import__("thresher.filter").filter.random_subset(
            [f"s{i}" for i in range(10)], keep=0.05
        ),
        ConfigError,
        ("keep=0.05 of 10 items keeps none", "raise keep"),
    ),
    Case(
        "run-filter-sum-over-100-touches-nothing",
        _run_filter(outliers=0.6, similar=0.45),
        ConfigError,
        ("removes everything", "keep their sum below 100%"),
        _no_embeddings,  # refused before extracting: no cache entry appears
    ),
    Case(
        "run-filter-unknown-projection",
        _run_filter(projection="tsne"),
        ConfigError,
        ("unknown projection 'tsne'", "valid:"),
    ),
]


# --- evaluate -----------------------------------------------------------------------------------
def _evaluate(ids: Any, seeds: int = 1) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.workflows.evaluate import evaluate_run

        return evaluate_run(ctx.open(), subset_ids=np.asarray(ids), seeds=seeds, epochs=1)

    return act


def _ids_file(name: str, text: str) -> Callable[[Ctx], None]:
    return _write(name, text.encode())


EVALUATE = [
    Case(
        "evaluate-empty-subset",
        _evaluate(np.array([], dtype=str)),
        DataError,
        ("the subset is empty", "select at least one training image"),
    ),
    Case(
        "evaluate-unknown-subset-ids",
        _evaluate(["digits/train/nope"]),
        DataError,
        ("1 id(s) not in the data set, e.g. 'digits/train/nope'", "must come from this data set"),
    ),
    Case(
        "evaluate-repeated-subset-id",
        lambda ctx: _evaluate([_first_id(ctx)] * 2)(ctx),
        DataError,
        ("names an image more than once", "pass each id once"),
    ),
    Case(
        "evaluate-zero-seeds",
        _evaluate(["x"], seeds=0),
        ConfigError,
        ("--seeds must be >= 1, got 0",),
    ),
    Case(
        "subset-file-lists-no-ids",
        lambda ctx: __import__("thresher.store").store.read_ids(ctx.data / "keep.txt"),
        DataError,
        ("lists no ids", "needs at least one sample"),
        _ids_file("keep.txt", "# nothing here\n\n"),
    ),
    Case(
        "subset-csv-without-id-column",
        lambda ctx: __import__("thresher.store").store.read_ids(ctx.data / "keep.csv"),
        DataError,
        ("no 'id' column (columns: name)",),
        _ids_file("keep.csv", "name\na\n"),
    ),
]


def _first_id(ctx: Ctx) -> str:
    from thresher.workflows.run import run_dataset

    return str(run_dataset(ctx.open(), "train").ids[0])


# --- export and the run store ---------------------------------------------------------------------
def _export(fmt: str, rel: str) -> Callable[[Ctx], Any]:
    def act(ctx: Ctx) -> Any:
        from thresher.workflows.export import export_run

        return export_run(ctx.open(), fmt=fmt, out=ctx.out / rel)

    return act


def _occupied(rel: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.out / rel).mkdir(parents=True)
        (ctx.out / rel / "mine.txt").write_text("the user's file\n")

    return setup


def _readonly_out(ctx: Ctx) -> None:
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "already.txt").write_text("the user's file\n")
    deny_writes_under(ctx.monkeypatch, ctx.out)


def _file_in_the_way(ctx: Ctx) -> None:
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "blocker").write_text("a file, not a folder\n")


def _break_manifest(text: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        (ctx.run / "manifest.json").write_text(text)

    return setup


EXPORT_STORE = [
    Case(
        "export-unknown-format",
        _export("xlsx", "kept.xlsx"),
        ConfigError,
        ("unknown export format 'xlsx'", "use one of txt, csv"),
    ),
    Case(
        "export-into-a-non-empty-folder",
        _export("folder", "kept"),
        RunError,
        ("exists and is not empty", "choose a new output folder"),
        _occupied("kept"),
    ),
    Case(
        "export-list-into-read-only-folder",
        _export("txt", "kept.txt"),
        RunError,
        ("cannot write", "Permission denied", "choose a writable output directory"),
        _readonly_out,
    ),
    Case(
        "export-folder-into-read-only-folder",
        _export("folder", "kept"),
        RunError,
        ("cannot create", "Permission denied", "choose a writable output directory"),
        _readonly_out,
    ),
    Case(
        "export-folder-below-a-file",
        _export("folder", "blocker/kept"),
        RunError,
        ("cannot create", "choose a writable output directory"),
        _file_in_the_way,
    ),
    Case(
        "export-unknown-filter-tag",
        lambda ctx: __import__("thresher.workflows.export").workflows.export.export_run(
            ctx.open(), fmt="txt", out=ctx.out / "k.txt", tag="o99-nothing"
        ),
        RunError,
        ("has no filter/o99-nothing/result.parquet", "run the step that makes it first"),
    ),
    Case(
        "run-folder-is-not-a-run",
        lambda ctx: __import__("thresher.workflows.run").workflows.run.open_run(ctx.data),
        RunError,
        ("is not a Thresher run (no manifest.json)", "create one with `thresher train`"),
    ),
    Case(
        "run-manifest-not-json",
        lambda ctx: ctx.open(),
        RunError,
        ("manifest.json is unreadable or not JSON", "recreate the run"),
        _break_manifest("{ half a manifest"),
    ),
    Case(
        "run-manifest-from-another-schema",
        lambda ctx: ctx.open(),
        RunError,
        ("has run schema 99", "recreate the run with this version"),
        _break_manifest('{"schema_version": 99}'),
    ),
    Case(
        "train-into-a-non-empty-run",
        lambda ctx: __import__("thresher.workflows.train").workflows.train.train_run(
            ctx.run,
            data=__import__("thresher.workflows.run").workflows.run.DataSpec(
                name="digits", limit=50
            ),
            model="mnist_lenet",
            epochs=1,
        ),
        RunError,
        ("is not empty", "pass --overwrite"),
    ),
]


# --- a full disk ------------------------------------------------------------------------------------
def _full(where: str = "fsync") -> Callable[[Ctx], None]:
    return lambda ctx: disk_full(ctx.monkeypatch, where=where)


DISK_FULL = [
    Case(
        "disk-full-halfway-through-a-file",
        lambda ctx: ctx.open().write_array("embedding.npy", np.zeros((100, 8))),
        RunError,
        ("embedding.npy failed: No space left on device", "check free disk space"),
        _full("write"),
    ),
    Case(
        "disk-full-halfway-through-an-id-list",
        _export("txt", "kept.txt"),
        RunError,
        ("kept.txt failed: No space left on device", "check free disk space"),
        _full("write"),
    ),
    Case(
        "disk-full-writing-a-result",
        lambda ctx: ctx.open().write_json("notes.json", {"a": 1}),
        RunError,
        ("notes.json failed: No space left on device", "check free disk space"),
        _full(),
    ),
    Case(
        "disk-full-at-the-rename",
        lambda ctx: ctx.open().write_array("x.npy", np.zeros(10)),
        RunError,
        ("x.npy failed: No space left on device", "check free disk space"),
        _full("replace"),
    ),
    Case(
        "disk-full-while-filtering",
        _run_filter(outliers=0.1, similar=0.2),
        RunError,
        ("No space left on device", "check free disk space"),
        _full(),
    ),
    Case(
        "disk-full-while-exporting",
        _export("parquet", "kept.parquet"),
        RunError,
        ("kept.parquet failed: No space left on device", "check free disk space"),
        _full(),
    ),
]


# --- the command line ---------------------------------------------------------------------------
def _cli(*argv: str) -> Callable[[Ctx], list[str]]:
    """argv with ``{run}``, ``{data}`` and ``{out}`` filled in from the context."""

    def act(ctx: Ctx) -> list[str]:
        fill = {"run": str(ctx.run), "data": str(ctx.data), "out": str(ctx.out)}
        return [a.format(**fill) for a in argv]

    return act


CLI = [
    Case(
        "cli-filter-percentage-over-100",
        _cli("filter", "{run}", "--outliers", "120"),
        None,
        ("--outliers must be a percentage in [0, 100), got 120",),
    ),
    Case(
        "cli-filter-percentages-sum-over-100",
        _cli("filter", "{run}", "--outliers", "60", "--similar", "50"),
        None,
        ("removes everything", "keep their sum below 100%"),
        _no_embeddings,
    ),
    Case(
        "cli-filter-unknown-method",
        _cli("filter", "{run}", "--method", "fastest"),
        None,
        ("unknown duplicate finder 'fastest'", "valid:"),
    ),
    Case(
        "cli-filter-not-a-run",
        _cli("filter", "{data}"),
        None,
        ("is not a Thresher run", "thresher train"),
    ),
    Case(
        "cli-export-unknown-format",
        _cli("export", "{run}", "--format", "xlsx", "--out", "{out}/k.xlsx"),
        None,
        ("unknown export format 'xlsx'", "use one of"),
    ),
    Case(
        "cli-export-into-non-empty-folder",
        _cli("export", "{run}", "--format", "folder", "--out", "{out}/kept"),
        None,
        ("exists and is not empty", "choose a new output folder"),
        _occupied("kept"),
    ),
    Case(
        "cli-evaluate-unknown-ids",
        _cli("evaluate", "{run}", "--subset", "{data}/keep.txt", "--seeds", "1"),
        None,
        ("id(s) not in the data set, e.g. 'not/a/sample'", "must come from this data set"),
        _ids_file("keep.txt", "not/a/sample\n"),
    ),
    Case(
        "cli-evaluate-empty-subset-file",
        _cli("evaluate", "{run}", "--subset", "{data}/keep.txt"),
        None,
        ("lists no ids", "needs at least one sample"),
        _ids_file("keep.txt", "\n"),
    ),
    Case(
        "cli-evaluate-missing-subset-file",
        _cli("evaluate", "{run}", "--subset", "{data}/absent.txt"),
        None,
        ("absent.txt does not exist", "give a txt/csv/json/parquet list of ids"),
    ),
    Case(
        "cli-embed-unknown-layer",
        _cli("embed", "{run}", "--layer", "conv9"),
        None,
        ("model has no layer 'conv9'", "thresher layers"),
    ),
    Case(
        "cli-embed-unknown-reduction",
        _cli("embed", "{run}", "--pooling", "max"),
        None,
        ("--pooling must be flatten or avgpool, got 'max'",),
    ),
    Case(
        "cli-layers-unknown-model",
        _cli("layers", "lenett"),
        None,
        ("unknown model 'lenett'", "mnist_lenet"),
    ),
    Case(
        "cli-data-info-corrupt-idx",
        _cli("data", "info", "{data}/idx"),
        None,
        ("is truncated or corrupt", "download it again"),
        _idx(images=_cut(idx_bytes(_images()), 0.7)),
    ),
    Case(
        "cli-data-info-corrupt-jpeg",
        _cli("data", "info", "{data}/pics"),
        None,
        ("cannot decode image train/dog/bad.jpg", "delete or replace that file"),
        _folder(lambda r: (r / "train" / "dog" / "bad.jpg").write_bytes(b"\xff\xd8\xffjunk")),
    ),
    Case(
        "cli-train-into-existing-run",
        _cli("train", "digits", "--model", "mnist_lenet", "--out", "{run}", "--limit", "50"),
        None,
        ("is not empty", "--overwrite"),
    ),
    Case(
        "cli-compare-keep-not-numbers",
        _cli("compare", "{run}", "--keep", "half"),
        None,
        ("--keep must be numbers separated by commas, got 'half'",),
    ),
    Case(
        "cli-compare-unknown-method",
        _cli("compare", "{run}", "--methods", "random,coin"),
        None,
        ("unknown method 'coin'", "use any of", "random", "similar"),
    ),
    Case(
        "cli-filter-disk-full",
        _cli("filter", "{run}", "--outliers", "10", "--similar", "20"),
        None,
        ("No space left on device", "check free disk space"),
        _full(),
    ),
]

# --- diagnose, reduce, explain, report, app ----------------------------------------------------
DIAGNOSE_REDUCE = [
    Case(
        "cli-diagnose-unknown-analysis",
        _cli("diagnose", "{run}", "--only", "colourz"),
        None,
        ("unknown analysis 'colourz'", "did you mean 'colours'"),
    ),
    Case("cli-diagnose-k-zero", _cli("diagnose", "{run}", "--k", "0"), None, ("k must be",)),
    Case(
        "cli-diagnose-class-smaller-than-k-plus-1",
        _cli("diagnose", "{run}", "--k", "30", "--only", "archetypes"),
        None,
        ("fewer than k + 1 = 31", "lower --k to at most"),
    ),
    Case(
        "cli-diagnose-unknown-reference-class",
        _cli("diagnose", "{run}", "--reference", "zebra", "--only", "density"),
        None,
        ("unknown reference class 'zebra'", "use one of 0, 1"),
    ),
    Case(
        "cli-report-without-diagnostics",
        _cli("report", "{run}"),
        None,
        ("has no diagnostics", "thresher diagnose"),
    ),
    Case(
        "cli-reduce-p0-larger-than-a-class",
        _cli("reduce", "{run}", "--p0", "5000"),
        None,
        ("p0 = 5000 is larger than class", "lower --p0 to at most"),
    ),
    Case(
        "cli-reduce-down-out-of-range",
        _cli("reduce", "{run}", "--p0", "5", "--down", "1.0"),
        None,
        ("down must be a fraction in (0, 1), got 1.0",),
    ),
    Case(
        "cli-reduce-up-out-of-range",
        _cli("reduce", "{run}", "--p0", "5", "--up", "-0.5"),
        None,
        ("up must be",),
    ),
    Case(
        "cli-reduce-lim-out-of-range",
        _cli("reduce", "{run}", "--p0", "5", "--lim", "-0.1"),
        None,
        ("lim must be a fraction in [0, 1], got -0.1",),
    ),
    Case(
        "cli-reduce-bad-cutoff",
        _cli("reduce", "{run}", "--p0", "5", "--cutoff", "drop:abc"),
        None,
        ("--cutoff drop:X needs a number, got 'drop:abc'",),
    ),
    Case(
        "cli-reduce-unknown-constraint",
        _cli("reduce", "{run}", "--p0", "5", "--constraint", "wide"),
        None,
        ("--constraint must be lower or band, got 'wide'",),
    ),
    Case(
        "cli-reduce-zero-iterations",
        _cli("reduce", "{run}", "--p0", "5", "--iterations", "0"),
        None,
        ("iterations (Nmax) must be >= 1, got 0",),
    ),
    Case(
        "cli-evaluate-cutoff-without-reduction",
        _cli("evaluate", "{run}", "--subset", "cutoff"),
        None,
        ("has no reduction", "thresher reduce"),
    ),
    Case(
        "cli-evaluate-full-seeds-without-cutoff",
        _cli("evaluate", "{run}", "--full-seeds", "2"),
        None,
        ("--full-seeds sets the models on T for --subset cutoff only", "use --seeds"),
    ),
    Case(
        "cli-evaluate-cutoff-zero-full-seeds",
        _cli("evaluate", "{run}", "--subset", "cutoff", "--full-seeds", "0"),
        None,
        ("--full-seeds must be >= 1, got 0",),
    ),
    Case(
        "cli-explain-index-out-of-range",
        _cli("explain", "{run}", "--index", "99999", "--out", "{out}/map.png"),
        None,
        ("--index must be in [0, 200), got 99999",),
    ),
    Case(
        "cli-app-not-a-run",
        _cli("app", "{data}"),
        None,
        ("is not a Thresher run (no manifest.json)", "thresher train"),
    ),
    Case(
        "cli-engine-unknown",
        _cli("embed", "{run}", "--engine", "spark"),
        None,
        ("unknown engine 'spark'",),
    ),
]

CASES = (
    DIAGNOSE_REDUCE
    + LOADER_IDX
    + LOADER_CIFAR
    + LOADER_FOLDER
    + MODELS_LAYERS
    + EMBED_FILTER
    + EVALUATE
    + EXPORT_STORE
    + DISK_FULL
    + CLI
)


# --- the test --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run (mnist_lenet, 1 epoch, 200 real digits) with its embeddings and one filter."""
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("trust") / "run"
    train_run(out, data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1)
    run_filter(open_run(out), FilterSettings(outliers=0.1, similar=0.1), cloud=False)
    return out


def _normalise(text: str) -> str:
    return " ".join(text.split())  # rich may wrap long lines on narrow terminals


def test_the_catalogue_is_big_enough_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 40
    assert all(len(c.fragments) >= 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_cleanly_and_changes_nothing(
    case: Case,
    base_run: Path,
    tmp_path: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = Ctx(
        data=tmp_path / "data",
        run=tmp_path / "run",
        out=tmp_path / "out",
        cli=cli,
        monkeypatch=monkeypatch,
    )
    ctx.data.mkdir()
    shutil.copytree(base_run, ctx.run)
    case.setup(ctx)
    before_data, before_run = tree_digest(ctx.data), tree_digest(ctx.run)
    before_out = tree_digest(ctx.out)

    if case.error is None:
        code, _, err = cli(case.act(ctx))
        assert code == 2, err
        assert "Traceback" not in err
        assert err.startswith("error: "), err
        assert len(err.strip().splitlines()) == 1, err
        message = _normalise(err)
    else:
        with pytest.raises(case.error) as info:
            case.act(ctx)
        message = _normalise(str(info.value))
        assert "\n" not in str(info.value)
    for fragment in case.fragments:
        assert fragment in message, message

    monkeypatch.undo()  # lift simulated read-only folders and full disks before reading back
    assert tree_digest(ctx.data) == before_data, "the user's data changed"
    assert tree_digest(ctx.run) == before_run, "the run directory changed"
    assert tree_digest(ctx.out) == before_out, "the output folder changed"
    assert partial_files(tmp_path) == []
