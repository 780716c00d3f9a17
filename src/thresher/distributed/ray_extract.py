"""Embedding extraction as a Ray Data pipeline: index-range shards through a pool of replicas.

The images go into Ray's object store once; each shard is a row ``{start, stop}`` of a Ray
Dataset. ``map_batches`` runs a pool of model replicas (actors, one per GPU when the cluster
has GPUs, else one per ``cpus_per_worker`` CPUs); each replica embeds its shard with
:func:`thresher.embed.extract.run_extraction` (the local engine's code, batch for batch) and
returns ``(row, values, prediction)`` rows. The driver places every row at its position, so
the result is in the data set's order whatever order the shards finish in. A replica that dies
is restarted by Ray and its shard is run again (Ray Data's actor pools restart actors and
retry their tasks without limit by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thresher.data.types import ImageDataset
from thresher.distributed.replica import ModelSource
from thresher.distributed.runtime import import_ray
from thresher.embed.extract import Embeddings, MemorySink, Transform, run_extraction
from thresher.embed.tap import Pooling
from thresher.errors import ConfigError, DataError

#: Default rows per shard; a multiple of the batch size keeps the batches of the local engine.
SHARD_BATCHES = 8


@dataclass(frozen=True)
class ExtractPlan:
    """How the work is split: ``shards`` index ranges over ``workers`` replicas."""

    shards: tuple[tuple[int, int], ...]
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float


def plan_shards(
    n: int,
    *,
    batch_size: int,
    shard_size: int | None,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
) -> ExtractPlan:
    """Cut ``n`` rows into shards whose size is a multiple of ``batch_size``.

    Whole batches keep each forward identical to the local engine's (same rows per batch);
    the default is :data:`SHARD_BATCHES` batches, fewer when that leaves a worker idle.
    """
    if n < 1:
        raise DataError("the data set is empty; nothing to embed")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if shard_size is None:
        batches = -(-n // batch_size)
        per_worker = -(-batches // workers)
        shard_size = batch_size * max(1, min(SHARD_BATCHES, per_worker))
    elif shard_size < 1 or shard_size % batch_size:
        raise ConfigError(
            f"shard_size must be a positive multiple of batch_size ({batch_size}), got "
            f"{shard_size}; whole batches keep the results equal to the local engine's"
        )
    shards = tuple((a, min(a + shard_size, n)) for a in range(0, n, shard_size))
    # More replicas than shards would only start idle processes.
    return ExtractPlan(shards, min(workers, len(shards)), cpus_per_worker, gpus_per_worker)


class ShardEmbedder:
    """One model replica (a Ray actor): embeds ``{start, stop}`` shards of the shared images."""

    def __init__(
        self,
        *,
        refs: dict[str, Any],
        layer: str,
        transform: Transform | None,
        batch_size: int,
        device: str | None,
        pooling: Pooling,
        stop_early: bool,
        torch_threads: int | None,
    ) -> None:
        ray = import_ray()
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        source: ModelSource = ray.get(refs["source"])
        self.images: np.ndarray = ray.get(refs["images"])  # zero-copy from the object store
        self.ids: np.ndarray = ray.get(refs["ids"])
        self.model = source.build()
        self.layer = layer
        self.transform = transform
        self.batch_size = batch_size
        self.device = device
        self.pooling: Pooling = pooling
        self.stop_early = stop_early

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows, values, preds = [], [], []
        for start, stop in zip(batch["start"].tolist(), batch["stop"].tolist(), strict=True):
            shard = ImageDataset(
                images=self.images[start:stop], labels=None, ids=self.ids[start:stop]
            )
            emb = run_extraction(
                self.model,
                shard,
                layer=self.layer,
                transform=self.transform,
                batch_size=self.batch_size,
                device=self.device,
                pooling=self.pooling,
                limit=None,
                stop_early=self.stop_early,
                sink_for=MemorySink,
                model_fp="replica",  # identity is the driver's business; skip the hashing
                dataset_fp="shard",
            )
            rows.append(np.arange(start, stop, dtype=np.int64))
            values.append(np.asarray(emb.values))
            preds.append(
                emb.predictions
                if emb.predictions is not None
                else np.full(stop - start, -1, dtype=np.int64)
            )
        return {
            "row": np.concatenate(rows),
            "values": np.concatenate(values),
            "prediction": np.concatenate(preds),
        }


def ray_extract(
    source: ModelSource,
    data: ImageDataset,
    *,
    layer: str,
    transform: Transform | None,
    model_fp: str,
    dataset_fp: str,
    plan: ExtractPlan,
    batch_size: int = 256,
    device: str | None = None,
    pooling: Pooling = "flatten",
    stop_early: bool = False,
    torch_threads: int | None = None,
    values_out: Callable[[int, int], np.ndarray] | None = None,
) -> Embeddings:
    """Embed ``data`` at ``layer`` on the connected Ray cluster (see the module docstring).

    Parameters
    ----------
    source:
        what each replica is built from.
    plan:
        shards and pool size (:func:`plan_shards`).
    values_out:
        ``values_out(rows, dim)`` gives the ``(N, D)`` float32 array to fill (a memory map in
        a run directory for data larger than RAM); default a new array in memory.
    other parameters:
        as for :func:`thresher.embed.extract`; ``model_fp``/``dataset_fp`` identify the result.

    Returns
    -------
    Embeddings
        ``values`` ``(N, D)`` in the order of ``data``; ``predictions`` unless ``stop_early``.
    """
    ray = import_ray()
    n = len(data)
    refs = {
        "source": ray.put(source),
        "images": ray.put(np.ascontiguousarray(data.images)),
        "ids": ray.put(np.asarray(data.ids)),
    }
    shards = ray.data.from_items(
        [{"start": a, "stop": b} for a, b in plan.shards],
        override_num_blocks=len(plan.shards),
    )
    embedded = shards.map_batches(
        ShardEmbedder,
        batch_size=1,
        # One shard in flight per replica: shards spread over the pool instead of queueing.
        compute=ray.data.ActorPoolStrategy(size=plan.workers, max_tasks_in_flight_per_actor=1),
        num_cpus=plan.cpus_per_worker,
        num_gpus=plan.gpus_per_worker or None,
        fn_constructor_kwargs={
            "refs": refs,
            "layer": layer,
            "transform": transform,
            "batch_size": batch_size,
            "device": device,
            "pooling": pooling,
            "stop_early": stop_early,
            "torch_threads": torch_threads,
        },
    )
    with _quiet_ray_data():
        values, predictions, filled = _gather(embedded, n, values_out)
    if values is None or not filled.all():
        missing = n if values is None else int((~filled).sum())
        raise DataError(
            f"the Ray pipeline returned no embeddings for {missing} of {n} samples; check the "
            "Ray logs (`ray logs`) for failed workers and run again"
        )
    full_forward = not stop_early and bool((predictions >= 0).all())
    return Embeddings(
        values=values,
        ids=np.asarray(data.ids),
        labels=None if data.labels is None else np.array(data.labels),
        layer=layer,
        model_fingerprint=model_fp,
        dataset_fingerprint=dataset_fp,
        pooling=pooling,
        predictions=predictions if full_forward else None,
    )


def _gather(
    embedded: Any, n: int, values_out: Callable[[int, int], np.ndarray] | None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Place every returned row at its position: the result is in the data set's order."""
    values: np.ndarray | None = None
    predictions = np.full(n, -1, dtype=np.int64)
    filled = np.zeros(n, dtype=bool)
    for block in embedded.iter_batches(batch_size=None, batch_format="numpy"):
        rows = block["row"]
        if values is None:
            dim = int(block["values"].shape[1])
            values = values_out(n, dim) if values_out is not None else np.empty((n, dim), "f4")
        values[rows] = block["values"]
        predictions[rows] = block["prediction"]
        filled[rows] = True
    return values, predictions, filled


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data logs every execution's plan and progress at INFO; keep warnings only."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
