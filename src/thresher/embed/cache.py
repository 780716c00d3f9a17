"""Embeddings cached in a run directory, keyed by model, layer, reduction, transform and data.

Layout of one entry (``key`` = 16 hex digits, see :func:`cache_key`)::

    RUN/embeddings/<key>/values.npy       (N, D) float32, read back memory-mapped
    RUN/embeddings/<key>/ids.npy          (N,) str
    RUN/embeddings/<key>/labels.npy       (N,) int64, when the data are labelled
    RUN/embeddings/<key>/predictions.npy  (N,) int64, when the full forward ran
    RUN/embeddings/<key>/meta.json        written last: its presence marks a complete entry

Every file is written atomically. Outputs larger than ``in_memory_limit`` bytes, or of unknown
length (a stream), are streamed batch by batch into a temporary ``.npy`` beside the target
and renamed into place at the end, so memory stays flat however many rows there are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import struct
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from thresher.data.types import ImageDataset
from thresher.embed.extract import (
    Data,
    Embeddings,
    MemorySink,
    Transform,
    ValuesSink,
    dataset_fingerprint_of,
    run_extraction,
)
from thresher.embed.tap import Pooling
from thresher.errors import ConfigError, RunError
from thresher.models.fingerprint import model_fingerprint
from thresher.store import Run, atomic_path

EMBED_DIR = "embeddings"
#: Above this many bytes of values, rows are streamed to disk instead of held in RAM.
IN_MEMORY_LIMIT = 256 * 2**20
#: Above this many rows, an image data set is embedded in parts of this size (rounded to whole
#: batches), each stored as it ends: a killed extraction resumes at the first missing part.
RESUME_CHUNK = 32_768
_META_VERSION = 1


def cache_key(
    *,
    model_fingerprint: str,
    layer: str,
    pooling: str,
    dataset_fingerprint: str,
    transform: str = "",
    precision: str = "fp32",
) -> str:
    """``sha256(model + layer + pooling + data + transform [+ precision])[:16]``: the entry's
    folder name (fp32 entries keep the key they had before precision existed)."""
    parts: tuple[str, ...] = (model_fingerprint, layer, pooling, dataset_fingerprint, transform)
    if precision != "fp32":
        parts += (precision,)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def transform_token(transform: Transform | None) -> str:
    """A stable text naming a transform: a dataclass's repr (``InputTransform(mean=...)``).

    Other callables are named by their qualified name (so a closure's captured values do not
    count; give it a ``cache_token`` attribute to make them count).
    """
    if transform is None:
        return "identity"
    token = getattr(transform, "cache_token", None)
    if token is not None:
        return str(token)
    if dataclasses.is_dataclass(transform):
        return repr(transform)
    cls = (
        transform if callable(transform) and hasattr(transform, "__qualname__") else type(transform)
    )
    return f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', repr(cls))}"


def entry_dir(key: str) -> str:
    """The run-relative folder of cache entry ``key`` (for ``Run.record_step``)."""
    return f"{EMBED_DIR}/{key}"


def cached_extract(
    run: Run,
    model: nn.Module,
    data: Data,
    *,
    layer: str,
    transform: Transform | None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    pooling: Pooling = "flatten",
    limit: int | None = None,
    stop_early: bool = False,
    dataset_fingerprint: str | None = None,
    in_memory_limit: int = IN_MEMORY_LIMIT,
    precision: str = "fp32",
) -> Embeddings:
    """:func:`~thresher.embed.extract.extract`, reusing a complete matching entry in ``run``.

    An entry is reused when model weights and architecture, layer, reduction, transform and
    data all match (and, unless ``stop_early``, it holds the full forward's predictions); the
    model does not run then. Otherwise the embeddings are computed and stored.

    Parameters
    ----------
    run:
        the run directory holding the cache.
    layer:
        the layer to tap (named explicitly: it is part of the key).
    dataset_fingerprint:
        identifies a plain ``(batch, ids)`` stream, which cannot be fingerprinted before it is
        read (a hash of its file list, say). Not needed for an ``ImageDataset`` or a stream
        with a ``fingerprint()`` method.
    in_memory_limit:
        values larger than this many bytes are streamed to disk during extraction.
    other parameters:
        as for :func:`~thresher.embed.extract.extract`.

    Returns
    -------
    Embeddings
        with ``values`` memory-mapped from the run and ``cache_key`` set.
    """
    data_fp = dataset_fingerprint or dataset_fingerprint_of(data, limit=limit)
    if data_fp is None:
        raise ConfigError(
            "this (batch, ids) stream has no fingerprint, so its embeddings cannot be cached; "
            "pass dataset_fingerprint= (e.g. a hash of its file list) or use extract()"
        )
    from thresher.device import resolve_device
    from thresher.precision import resolve_precision

    prec = resolve_precision(precision, resolve_device(device))
    model_fp = model_fingerprint(model)
    tf = transform_token(transform)
    key = cache_key(
        model_fingerprint=model_fp,
        layer=layer,
        pooling=pooling,
        dataset_fingerprint=data_fp,
        transform=tf,
        precision=prec,
    )
    rel = entry_dir(key)
    expected = {
        "layer": layer,
        "pooling": pooling,
        "model_fingerprint": model_fp,
        "dataset_fingerprint": data_fp,
        "transform": tf,
    }
    hit = _read_entry(run, rel, key=key, expected=expected, need_predictions=not stop_early)
    if hit is not None:
        return hit

    # Invalidate first: a crash while rewriting must not leave an old meta.json in place.
    run.file(f"{rel}/meta.json").unlink(missing_ok=True)
    options: dict[str, Any] = {
        "layer": layer,
        "transform": transform,
        "batch_size": batch_size,
        "device": device,
        "pooling": pooling,
        "stop_early": stop_early,
        "precision": prec,
        "model_fp": model_fp,
    }
    if isinstance(data, ImageDataset) and limit is None and len(data) > RESUME_CHUNK:
        emb = _extract_in_parts(run, rel, model, data, options, data_fp=data_fp)
    else:
        emb = run_extraction(
            model,
            data,
            limit=limit,
            sink_for=lambda rows: _CacheSink(run, f"{rel}/values.npy", rows, in_memory_limit),
            dataset_fp=data_fp,
            **options,
        )
    run.write_array(f"{rel}/ids.npy", emb.ids)
    for name, arr in (("labels", emb.labels), ("predictions", emb.predictions)):
        if arr is not None:
            run.write_array(f"{rel}/{name}.npy", arr)
        else:
            run.file(f"{rel}/{name}.npy").unlink(missing_ok=True)
    run.write_json(
        f"{rel}/meta.json",
        {
            **expected,
            "version": _META_VERSION,
            "key": key,
            "shape": list(emb.values.shape),
            "labelled": emb.labels is not None,
            "predictions": emb.predictions is not None,
            "full_forward": not stop_early,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        },
    )
    return dataclasses.replace(emb, cache_key=key)


def _extract_in_parts(
    run: Run,
    rel: str,
    model: nn.Module,
    data: ImageDataset,
    options: dict[str, Any],
    *,
    data_fp: str,
) -> Embeddings:
    """Extract a large data set :data:`RESUME_CHUNK` rows at a time, each part stored as it
    ends (``rel/parts/``), so a killed extraction resumes at the first missing part.

    Parts are whole multiples of the batch size, so every batch holds the rows a single pass
    would give it: the values are the same bytes as one uninterrupted pass."""
    from thresher.progress import track

    chunk = max(
        options["batch_size"], RESUME_CHUNK // options["batch_size"] * options["batch_size"]
    )
    starts = range(0, len(data), chunk)
    parts: list[Path] = []
    layer = options["layer"]
    for start in track(starts, total=len(starts), desc=f"embed {layer} ({chunk} rows a part)"):
        part = run.file(f"{rel}/parts/{start:012d}.npz")
        parts.append(part)
        if part.is_file():
            continue  # finished before a kill
        piece = data.take(np.arange(start, min(start + chunk, len(data))))
        emb = run_extraction(
            model,
            piece,
            limit=None,
            sink_for=MemorySink,
            dataset_fp=f"{data_fp}:{start}",
            **options,
        )
        arrays: dict[str, Any] = {"values": np.asarray(emb.values)}
        if emb.predictions is not None:
            arrays["predictions"] = emb.predictions
        part.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(part) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    dim = int(np.load(parts[0])["values"].shape[1])
    predictions: list[np.ndarray] = []
    with atomic_path(run.file(f"{rel}/values.npy")) as tmp:
        values = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(data), dim))
        for start, part in zip(starts, parts, strict=True):
            with np.load(part) as stored:
                values[start : start + stored["values"].shape[0]] = stored["values"]
                if "predictions" in stored:
                    predictions.append(stored["predictions"])
        values.flush()
        del values
    for part in parts:
        part.unlink()
    run.file(f"{rel}/parts").rmdir()
    return Embeddings(
        values=np.load(run.file(f"{rel}/values.npy"), mmap_mode="r"),
        ids=np.asarray(data.ids),
        labels=None if data.labels is None else np.asarray(data.labels),
        layer=layer,
        model_fingerprint=options["model_fp"],
        dataset_fingerprint=data_fp,
        pooling=options["pooling"],
        predictions=np.concatenate(predictions) if len(predictions) == len(parts) else None,
    )


def load_embeddings(run: Run, key: str) -> Embeddings:
    """The complete cache entry ``key`` of ``run`` (values memory-mapped)."""
    rel = entry_dir(key)
    emb = _read_entry(run, rel, key=key, expected=None, need_predictions=False)
    if emb is None:
        raise RunError(
            f"{run.path} has no complete embeddings entry {key!r}; run the embed step again"
        )
    return emb


def _read_entry(
    run: Run,
    rel: str,
    *,
    key: str,
    expected: dict[str, str] | None,
    need_predictions: bool,
) -> Embeddings | None:
    """The entry at ``rel`` when complete and matching ``expected``; ``None`` otherwise."""
    if not run.exists(f"{rel}/meta.json"):
        return None
    try:
        meta = run.read_json(f"{rel}/meta.json")
        if meta.get("version") != _META_VERSION:
            return None
        if expected is not None and any(meta.get(k) != v for k, v in expected.items()):
            return None
        if need_predictions and not meta.get("full_forward"):
            return None
        values = run.read_array(f"{rel}/values.npy")
        ids = np.asarray(run.read_array(f"{rel}/ids.npy", mmap=False))
        labels = run.read_array(f"{rel}/labels.npy", mmap=False) if meta["labelled"] else None
        preds = (
            run.read_array(f"{rel}/predictions.npy", mmap=False) if meta["predictions"] else None
        )
        if list(values.shape) != meta["shape"]:
            return None
        return Embeddings(
            values=values,
            ids=ids,
            labels=labels,
            layer=meta["layer"],
            model_fingerprint=meta["model_fingerprint"],
            dataset_fingerprint=meta["dataset_fingerprint"],
            pooling=meta.get("pooling", meta.get("reduce")),  # "reduce": entries before 0.2
            predictions=preds,
            cache_key=key,
        )
    except (RunError, OSError, ValueError, KeyError, TypeError):
        return None  # incomplete or damaged: recompute


class _CacheSink:
    """Small outputs collect in RAM and go through ``Run.write_array``; large ones stream."""

    def __init__(self, run: Run, rel: str, rows: int | None, in_memory_limit: int) -> None:
        self.run = run
        self.rel = rel
        self.rows = rows
        self.in_memory_limit = in_memory_limit
        self._sink: ValuesSink | None = None

    def _chosen(self, dim: int) -> ValuesSink:
        if self._sink is None:
            size = None if self.rows is None else self.rows * dim * 4
            if size is not None and size <= self.in_memory_limit:
                self._sink = MemorySink(self.rows)
            else:
                self._sink = NpyStreamWriter(self.run.file(self.rel))
        return self._sink

    def buffer(self, rows: int, dim: int) -> np.ndarray:
        return self._chosen(dim).buffer(rows, dim)

    def append(self, block: np.ndarray) -> None:
        self._chosen(block.shape[1]).append(block)

    def finish(self) -> np.ndarray:
        if isinstance(self._sink, MemorySink):
            self.run.write_array(self.rel, self._sink.finish())
        elif self._sink is not None:
            self._sink.finish()
        return self.run.read_array(self.rel)

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()


class NpyStreamWriter:
    """Append ``(b, D)`` float32 blocks to a ``.npy`` of unknown final length, atomically.

    The rows go to a temporary file beside ``path`` behind a fixed-size header whose row count
    is filled in by :meth:`finish`, which then renames the file onto ``path``. Memory use is
    one block; :meth:`abort` removes the temporary file and leaves ``path`` untouched.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stack = contextlib.ExitStack()
        self._fh: IO[bytes] | None = None
        self._dim: int | None = None
        self._rows = 0
        self._staging = np.empty((0, 0), dtype=np.float32)

    def buffer(self, rows: int, dim: int) -> np.ndarray:
        """A reused staging array: write a block into it, then :meth:`append` it."""
        if self._staging.shape[0] < rows or self._staging.shape[1] != dim:
            self._staging = np.empty((rows, dim), dtype=np.float32)
        return self._staging[:rows]

    def append(self, block: np.ndarray) -> None:
        if block.ndim != 2:
            raise ValueError(f"rows must be 2-D, got shape {block.shape}")
        if self._fh is None:
            self._dim = int(block.shape[1])
            tmp = self._stack.enter_context(atomic_path(self.path))
            self._fh = self._stack.enter_context(open(tmp, "wb"))  # noqa: SIM115
            self._fh.write(_npy_header(0, self._dim))
        elif block.shape[1] != self._dim:
            raise ValueError(f"row width changed from {self._dim} to {block.shape[1]}")
        self._fh.write(np.ascontiguousarray(block, dtype="<f4").data)  # no copy
        self._rows += len(block)

    def finish(self) -> np.ndarray:
        if self._fh is None:
            raise ValueError("no rows were written")
        self._fh.seek(0)
        self._fh.write(_npy_header(self._rows, self._dim or 0))
        self._stack.close()  # closes the file, fsyncs and renames it onto self.path
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def abort(self) -> None:
        exc = RuntimeError("aborted")
        self._stack.__exit__(type(exc), exc, None)  # atomic_path deletes the temporary file


_ROWS_WIDTH = 20  # digits reserved for the row count, so the header never changes length


def _npy_header(rows: int, dim: int) -> bytes:
    """A version-1.0 ``.npy`` header for ``(rows, dim)`` little-endian float32, 64-aligned."""
    text = (
        "{'descr': '<f4', 'fortran_order': False, 'shape': (" + f"{rows:>{_ROWS_WIDTH}}, {dim}), }}"
    )
    pad = -(10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body
