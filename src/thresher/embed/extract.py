"""Feature embeddings of a whole data set at one layer: ``extract(model, data) -> Embeddings``."""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from thresher.data.types import ImageDataset, read_rows
from thresher.device import as_tensor, resolve_device
from thresher.embed.tap import LayerTap, Pooling
from thresher.errors import ConfigError, DataError, ModelError, ThresherError
from thresher.models.fingerprint import model_fingerprint
from thresher.models.layers import default_layer, eval_mode, resolve_layer
from thresher.progress import track

Transform = Callable[[torch.Tensor], torch.Tensor]
#: What ``extract`` accepts: a data set, or an iterable of unlabelled ``(batch, ids)`` pairs.
Data = ImageDataset | Iterable[tuple[Any, Any]]


@dataclass(frozen=True, eq=False)
class Embeddings:
    """Per-sample feature vectors at one layer of one model.

    Attributes:
        values: ``(N, D)`` float32, possibly a read-only memory map (from the cache).
        ids: ``(N,)`` str, row ``i`` of ``values`` belongs to sample ``ids[i]``.
        labels: ``(N,)`` int64 class labels, or ``None`` for unlabelled data.
        layer: the tapped layer's dotted name.
        model_fingerprint: :func:`~thresher.models.fingerprint.model_fingerprint` of the model.
        dataset_fingerprint: the data's fingerprint (``ImageDataset.fingerprint()`` for a data
            set, the stream's own ``fingerprint()``, or a hash of the ids and pixels seen).
        pooling: how 4-D maps became vectors ("flatten" or "avgpool").
        predictions: ``(N,)`` int64 argmax of the model's logits when the full forward ran and
            returned ``(B, K)`` logits, else ``None`` (pseudo-labels for unlabelled data).
        cache_key: the run-directory cache key when it came from / went to a cache.
    """

    values: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    layer: str
    model_fingerprint: str
    dataset_fingerprint: str
    pooling: str = "flatten"
    predictions: np.ndarray | None = None
    cache_key: str | None = None

    def __post_init__(self) -> None:
        n = self.values.shape[0] if self.values.ndim == 2 else -1
        if self.values.ndim != 2 or self.values.dtype != np.float32:
            raise DataError(
                f"embeddings must be an (N, D) float32 array, got {self.values.shape} "
                f"{self.values.dtype}; pooling the layer output with pooling='flatten'"
            )
        for what, arr in (
            ("ids", self.ids),
            ("labels", self.labels),
            ("predictions", self.predictions),
        ):
            if arr is not None and arr.shape != (n,):
                raise DataError(
                    f"embeddings have {n} rows but {what} has shape {arr.shape}; "
                    "give one entry per row"
                )

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def dim(self) -> int:
        """``D``, the number of features per sample."""
        return int(self.values.shape[1])


class ValuesSink(Protocol):
    """Where extracted rows go: RAM (``extract``) or a file in a run (``cached_extract``).

    ``buffer(rows, dim)`` offers a writable ``(rows, dim)`` float32 array that the next block
    may be written into in place (saving a copy); ``append`` takes that array or any other.
    """

    def buffer(self, rows: int, dim: int) -> np.ndarray: ...

    def append(self, block: np.ndarray) -> None: ...

    def finish(self) -> np.ndarray: ...

    def abort(self) -> None: ...


class MemorySink:
    """Rows kept in RAM: one preallocated array when the row count is known up front."""

    def __init__(self, rows: int | None) -> None:
        self.rows = rows
        self._out: np.ndarray | None = None
        self._blocks: list[np.ndarray] = []
        self._filled = 0

    def buffer(self, rows: int, dim: int) -> np.ndarray:
        if self.rows is None:
            return np.empty((rows, dim), dtype=np.float32)
        if self._out is None:
            self._out = np.empty((self.rows, dim), dtype=np.float32)
        return self._out[self._filled : self._filled + rows]

    def append(self, block: np.ndarray) -> None:
        if self.rows is None:
            self._blocks.append(block)
            return
        target = self.buffer(len(block), block.shape[1])
        if not _same_array(target, block):
            target[...] = block
        self._filled += len(block)

    def finish(self) -> np.ndarray:
        if self._out is not None:
            return self._out[: self._filled]
        return np.concatenate(self._blocks) if self._blocks else np.empty((0, 0), np.float32)

    def abort(self) -> None:
        self._out, self._blocks = None, []


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """``b`` is exactly the memory of ``a`` (a block written in place into a buffer)."""
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    )


def extract(
    model: nn.Module,
    data: Data,
    *,
    layer: str | None = None,
    transform: Transform | None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    pooling: Pooling = "flatten",
    limit: int | None = None,
    stop_early: bool = False,
    precision: str = "fp32",
) -> Embeddings:
    """Embed every sample of ``data`` at ``layer`` of ``model``.

    The model runs in eval mode under ``torch.inference_mode()`` (its train/eval flags are
    restored afterwards); when ``device`` differs from the model's, the model is moved there for
    the extraction and moved back afterwards. Whole batches go through the transform and the
    model; there is no per-sample Python.

    Parameters
    ----------
    model:
        a classifier ``(B, C, H, W) -> (B, K)`` (or any module, then ``predictions`` is None).
    data:
        an :class:`~thresher.data.types.ImageDataset` (in order, its labels kept), or an
        iterable of ``(batch, ids)``: ``batch`` a ``(B, C, H, W)`` array or tensor, ``ids``
        ``B`` sample ids (labels are ``None`` then). A stream with a ``fingerprint()`` method
        is identified by it.
    layer:
        the layer to tap; ``None`` = the penultimate one (:func:`default_layer`). Pass a
        registered model's ``model_spec(name).feature_layer`` to use its declared one.
    transform:
        turns a stored batch into model input on the device (``transform_for(name)``);
        ``None`` when the batches already are model input.
    batch_size:
        rows per forward for an ``ImageDataset`` (a stream keeps its own batches).
    device:
        ``None``/"auto" = CUDA when available, else CPU.
    pooling:
        "flatten" or "avgpool" (global average over the spatial axes) for 4-D outputs.
    limit:
        embed only the first ``limit`` samples.
    stop_early:
        end each forward right after the tapped layer: faster for early layers, but no
        ``predictions``.
    precision:
        ``"fp32"`` (default: embeddings comparable across runs and machines), ``"bf16"``,
        ``"fp16"`` or ``"auto"``; the values are stored as float32 either way.

    Returns
    -------
    Embeddings
        ``values`` ``(N, D)`` float32 in the order of ``data``.

    Raises
    ------
    DataError
        a non-finite embedding (naming the first bad sample), malformed batches or ids.
    LayerError
        an unknown layer (with the valid names).
    ModelError
        the model's forward failed on the data.
    """
    return run_extraction(
        model,
        data,
        layer=layer,
        transform=transform,
        batch_size=batch_size,
        device=device,
        pooling=pooling,
        limit=limit,
        stop_early=stop_early,
        sink_for=MemorySink,
        precision=precision,
    )


def run_extraction(
    model: nn.Module,
    data: Data,
    *,
    layer: str | None,
    transform: Transform | None,
    batch_size: int,
    device: str | torch.device | None,
    pooling: Pooling,
    limit: int | None,
    stop_early: bool,
    sink_for: Callable[[int | None], ValuesSink],
    model_fp: str | None = None,
    dataset_fp: str | None = None,
    precision: str = "fp32",
) -> Embeddings:
    """:func:`extract` writing its rows into ``sink_for(expected_rows)`` (used by the cache)."""
    from thresher.precision import autocast, resolve_precision

    if pooling not in ("flatten", "avgpool"):
        raise ConfigError(
            f"extract needs (N, D) rows, so pooling must be 'flatten' or 'avgpool', got {pooling!r}"
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 or None, got {limit}")
    if layer is not None:
        resolve_layer(model, layer)  # refuse a wrong name before reading any data
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    model_fp = model_fp or model_fingerprint(model)
    source = _source_for(data, batch_size=batch_size, limit=limit, known_fp=dataset_fp)
    batches = _device_batches(source.batches, transform=transform, device=dev)

    with _on_device(model, dev), eval_mode(model), torch.inference_mode(), autocast(prec, dev):
        first = next(batches, None)
        if first is None:
            raise DataError("the data yielded no batches; check the data source and its filters")
        if layer is None:
            layer = default_layer(model, input_shape=tuple(first[0].shape[1:]))
        sink = sink_for(source.rows)
        try:
            with LayerTap(model, layer, pooling=pooling, stop_early=stop_early) as tap:
                ids, predictions = _drain(
                    tap,
                    track(
                        itertools.chain([first], batches),
                        total=source.num_batches,
                        desc=f"embed {layer}",
                    ),
                    layer=layer,
                    sink=sink,
                    want_predictions=not stop_early,
                )
            all_ids = np.concatenate(ids)
            _check_unique(all_ids)
            values = sink.finish()
        except BaseException:
            sink.abort()
            raise
    return Embeddings(
        values=values,
        ids=all_ids,
        labels=source.labels(),
        layer=layer,
        model_fingerprint=model_fp,
        dataset_fingerprint=source.fingerprint(),
        pooling=pooling,
        predictions=predictions,
    )


# --- the batch loop --------------------------------------------------------------------------
def _drain(
    tap: LayerTap,
    batches: Iterable[tuple[torch.Tensor, np.ndarray]],
    *,
    layer: str,
    sink: ValuesSink,
    want_predictions: bool,
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """Forward every batch and hand its rows to ``sink``.

    On the CPU the tap writes each batch straight into the sink's buffer (one copy, into memory
    already paged in). On a GPU the rows are copied out asynchronously and handled one batch
    behind, so the device keeps running while the host checks and stores them.
    """
    ids: list[np.ndarray] = []
    preds: list[np.ndarray] | None = [] if want_predictions else None
    pending: deque[tuple[torch.Tensor, torch.Tensor | None, np.ndarray, Any]] = deque()
    dim: int | None = None

    def settle() -> None:
        feat, pred, batch_ids, event = pending.popleft()
        if event is not None:
            event.synchronize()
        block = (feat if feat.dtype == torch.float32 else feat.float()).numpy()
        if not np.isfinite(block).all():
            bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise DataError(
                f"the embedding of sample {str(batch_ids[bad])!r} at layer {layer!r} contains "
                "NaN or inf; check the model weights (did training diverge?) and the input "
                "transform"
            )
        sink.append(block)
        ids.append(batch_ids)
        if preds is not None and pred is not None:
            preds.append(pred.numpy())

    for step, (x, batch_ids) in enumerate(batches):
        on_cpu = x.device.type == "cpu"
        if on_cpu and dim is not None:
            tap.write_next_into(layer, torch.from_numpy(sink.buffer(len(x), dim)))
        try:
            out = tap.run(x)
        except ThresherError:
            raise
        except RuntimeError as err:
            raise ModelError(
                f"the model's forward failed on a batch of shape {tuple(x.shape)} ({err}); "
                "check that the transform gives the input the model expects (channels, size), "
                "or lower batch_size if memory ran out"
            ) from err
        feat = tap.outputs.get(layer)
        if feat is None:
            raise ModelError(
                f"layer {layer!r} did not run in the model's forward; tap a layer that the "
                "forward uses (see `thresher layers`)"
            )
        dim = int(feat.shape[1])
        logits = (
            out
            if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[0] == len(x)
            else None
        )
        if preds is not None and step == 0 and logits is None:
            preds = None  # the model does not return (B, K) logits
        pred = (
            logits.argmax(1).to("cpu", non_blocking=True)
            if preds is not None and logits is not None
            else None
        )
        event = None
        if feat.is_cuda:
            event = torch.cuda.Event()
            feat = feat.to("cpu", non_blocking=True)  # pinned destination: an async copy
            event.record()
        else:
            feat = feat.cpu()
        pending.append((feat, pred, batch_ids, event))
        if len(pending) > (0 if on_cpu else 1):
            settle()
    while pending:
        settle()
    predictions = np.concatenate(preds).astype(np.int64) if preds else None
    return ids, predictions


# --- data sources ----------------------------------------------------------------------------
@dataclass
class _Source:
    batches: Iterator[tuple[torch.Tensor, np.ndarray]]
    rows: int | None
    num_batches: int | None
    labels: Callable[[], np.ndarray | None]  # a stream's labels are known once it is read
    fingerprint: Callable[[], str]


def dataset_fingerprint_of(data: Data, *, limit: int | None = None) -> str | None:
    """The fingerprint ``extract`` will record for ``data``, if known before reading it.

    ``None`` for a plain stream, whose fingerprint is only known once it has been read.
    """
    if isinstance(data, ImageDataset):
        n = len(data) if limit is None else min(limit, len(data))
        return data.fingerprint() if n == len(data) else data.take(np.arange(n)).fingerprint()
    own = getattr(data, "fingerprint", None)
    if callable(own):
        fp = str(own())
        return (
            fp if limit is None else hashlib.sha256(f"{fp}\x00limit={limit}".encode()).hexdigest()
        )
    return None


def _source_for(data: Data, *, batch_size: int, limit: int | None, known_fp: str | None) -> _Source:
    known_fp = known_fp or dataset_fingerprint_of(data, limit=limit)
    if isinstance(data, ImageDataset):
        n = len(data) if limit is None else min(limit, len(data))
        starts = range(0, n, batch_size)

        def dataset_batches() -> Iterator[tuple[torch.Tensor, np.ndarray]]:
            for s in starts:
                e = min(s + batch_size, n)
                x = as_tensor(read_rows(data.images, slice(s, e)))  # a map stays out of the RSS
                yield x, data.ids[s:e]

        batches = dataset_batches()
        labels = None if data.labels is None else np.array(data.labels[:n])
        return _Source(batches, n, len(starts), lambda: labels, lambda: known_fp or "")
    if not isinstance(data, Iterable):
        raise DataError(
            f"cannot embed a {type(data).__name__}; pass an ImageDataset or an iterable of "
            "(batch, ids) pairs"
        )
    digest = hashlib.sha256()
    try:
        num_batches: int | None = len(data)  # type: ignore[arg-type]
    except TypeError:
        num_batches = None
    collected: list[np.ndarray] = []
    stream = _stream_batches(
        data, limit=limit, digest=None if known_fp else digest, labels_out=collected
    )

    def stream_labels() -> np.ndarray | None:
        return np.concatenate(collected).astype(np.int64) if collected else None

    return _Source(stream, None, num_batches, stream_labels, lambda: known_fp or digest.hexdigest())


def _stream_batches(
    data: Iterable[Any], *, limit: int | None, digest: Any | None, labels_out: list[np.ndarray]
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    """A stream's ``(batch, ids)`` or ``(batch, ids, labels)`` items as tensors and id arrays;
    labels (class indices) travel with their batch into ``labels_out``, all or none."""
    seen = 0
    labelled: bool | None = None
    for k, item in enumerate(data):
        if not (isinstance(item, tuple | list) and len(item) in (2, 3)):
            raise DataError(
                f"a stream must yield (batch, ids) or (batch, ids, labels), got a "
                f"{type(item).__name__}; yield (x, ids) with x of shape (B, C, H, W) and B ids"
            )
        if labelled is None:
            labelled = len(item) == 3
        elif labelled != (len(item) == 3):
            raise DataError(
                f"stream batch {k} {'lacks' if labelled else 'has'} labels but batch 0 "
                f"{'has' if labelled else 'lacks'} them; label every batch or none"
            )
        batch, raw_ids = item[0], item[1]
        x = batch if isinstance(batch, torch.Tensor) else as_tensor(np.asarray(batch))
        if isinstance(raw_ids, torch.Tensor):
            raw_ids = raw_ids.cpu().numpy()
        ids = np.asarray(raw_ids).astype(str).reshape(-1)
        if x.ndim != 4 or len(ids) != x.shape[0]:
            raise DataError(
                f"a stream batch of shape {tuple(x.shape)} came with {len(ids)} ids; batches "
                "must be (B, C, H, W) with exactly B ids"
            )
        batch_labels = None
        if len(item) == 3:
            raw_labels = item[2]
            if isinstance(raw_labels, torch.Tensor):
                raw_labels = raw_labels.cpu().numpy()
            batch_labels = np.asarray(raw_labels).reshape(-1)
            if len(batch_labels) != len(ids) or batch_labels.dtype.kind not in "iu":
                raise DataError(
                    f"stream batch {k} has {len(ids)} ids but labels of shape "
                    f"{batch_labels.shape} ({batch_labels.dtype}); give B integer class indices"
                )
        if limit is not None and seen + len(ids) > limit:
            keep = limit - seen
            x, ids = x[:keep], ids[:keep]
            batch_labels = None if batch_labels is None else batch_labels[:keep]
        if batch_labels is not None:
            labels_out.append(batch_labels)
        if digest is not None:
            digest.update("\x00".join(ids.tolist()).encode() + b"\x01")
            digest.update(f"{tuple(x.shape)}{x.dtype}".encode())
            if x.device.type == "cpu":  # hashing device tensors would cost a copy back
                digest.update(x.contiguous().reshape(-1).view(torch.uint8).numpy().data)
        seen += len(ids)
        if len(ids):
            yield x, ids
        if limit is not None and seen >= limit:
            return


def _device_batches(
    batches: Iterator[tuple[torch.Tensor, np.ndarray]],
    *,
    transform: Transform | None,
    device: torch.device,
) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
    cuda = device.type == "cuda"
    for x, ids in batches:
        if x.device != device:
            if cuda and x.device.type == "cpu":
                x = x.pin_memory().to(device, non_blocking=True)
            else:
                x = x.to(device)
        yield (x if transform is None else transform(x)), ids


def _check_unique(ids: np.ndarray) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != len(ids):
        raise DataError(
            f"sample id {str(uniq[np.argmax(counts > 1)])!r} occurs more than once; every sample "
            "needs its own id"
        )


@contextmanager
def _on_device(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Move ``model`` to ``device`` for the block when it lives elsewhere; move it back after."""
    devices = {t.device for t in itertools.chain(model.parameters(), model.buffers())}
    target = device
    if not devices or all(_same_device(d, target) for d in devices):
        yield
        return
    if len(devices) > 1:
        raise ModelError(
            f"the model is spread over {sorted(map(str, devices))}; put it on one device or "
            "pass device= matching it"
        )
    home = devices.pop()
    model.to(target)
    try:
        yield
    finally:
        model.to(home)


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda" or b.index is None or a.index is None:
        return True
    return a.index == b.index
