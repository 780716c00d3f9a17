"""Execution engines: ``local`` (in this process, the default) and ``ray`` (a Ray cluster).

Both offer the same two operations and give the same results:

* ``extract(source, data, layer=..., transform=...) -> Embeddings``: embeddings of a data set;
* ``sweep(jobs, train=..., test=...) -> list[EvaluationResult]``: retrain-and-test many subsets
  with many seeds.

``get_engine("ray", address=...)`` connects lazily, on the first operation, and
``engine.close()`` (or ``with get_engine(...) as engine:``) shuts down a cluster it started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from thresher.data.types import ImageDataset
from thresher.distributed.replica import ModelSource
from thresher.distributed.runtime import RaySession, import_ray
from thresher.distributed.sweep import (
    EvalJob,
    check_jobs,
    data_key,
    evaluate_seed,
    merge_seed_results,
    read_seed_result,
    seed_key,
    seed_path,
    write_seed_result,
)
from thresher.embed.extract import Embeddings, Transform, dataset_fingerprint_of, extract
from thresher.embed.tap import Pooling
from thresher.errors import ConfigError
from thresher.evaluate.result import EvaluationResult
from thresher.models.fingerprint import model_fingerprint
from thresher.registry import Registry

ENGINE_NAMES = ("local", "ray")


class Engine(Protocol):
    """What ``thresher embed/evaluate/compare`` need from an engine."""

    name: str

    def extract(
        self,
        source: ModelSource,
        data: ImageDataset,
        *,
        layer: str,
        transform: Transform | None,
        batch_size: int = 256,
        device: str | None = None,
        pooling: Pooling = "flatten",
        stop_early: bool = False,
        values_out: Callable[[int, int], np.ndarray] | None = None,
    ) -> Embeddings: ...

    def sweep(
        self,
        jobs: Sequence[EvalJob],
        *,
        train: ImageDataset,
        test: ImageDataset,
        device: str | None = None,
        store: str | os.PathLike[str] | None = None,
    ) -> list[EvaluationResult]: ...

    def close(self) -> None: ...


class _EngineBase:
    name = "base"

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the engine holds (nothing for the local engine)."""


class LocalEngine(_EngineBase):
    """Everything in this process: exactly ``thresher.embed.extract`` and ``evaluate``."""

    name = "local"

    def extract(
        self,
        source: ModelSource,
        data: ImageDataset,
        *,
        layer: str,
        transform: Transform | None,
        batch_size: int = 256,
        device: str | None = None,
        pooling: Pooling = "flatten",
        stop_early: bool = False,
        values_out: Callable[[int, int], np.ndarray] | None = None,
    ) -> Embeddings:
        """:func:`thresher.embed.extract` on a model built from ``source``."""
        del values_out  # the local engine keeps rows in memory (the run cache streams them)
        return extract(
            source.build(),
            data,
            layer=layer,
            transform=transform,
            batch_size=batch_size,
            device=device,
            pooling=pooling,
            stop_early=stop_early,
        )

    def sweep(
        self,
        jobs: Sequence[EvalJob],
        *,
        train: ImageDataset,
        test: ImageDataset,
        device: str | None = None,
        store: str | os.PathLike[str] | None = None,
    ) -> list[EvaluationResult]:
        """One :func:`thresher.evaluate.evaluate` per job, in order.

        With ``store`` (a folder), each finished (job, seed) is written there at once under a
        key of everything that decides it, and a rerun trains only the seeds not stored yet:
        on the CPU one after another (as ``evaluate`` trains them anyway, so a resumed result
        equals an uninterrupted one), on CUDA the missing seeds of a job stacked together.
        """
        from thresher.device import resolve_device
        from thresher.evaluate import evaluate

        check_jobs(jobs)

        def run(job: EvalJob, seeds: list[int]) -> EvaluationResult:
            return evaluate(
                train,
                test,
                model=job.model,
                recipe=job.recipe,
                subset_ids=job.subset_ids,
                transform=job.transform,
                seeds=seeds,
                device=device,
            )

        if store is None:
            return [run(job, list(job.seeds)) for job in jobs]
        folder = Path(store)
        data = data_key(train, test)
        sequential = resolve_device(device).type != "cuda"
        out = []
        for job in jobs:
            parts: dict[int, dict[str, Any]] = {}
            for seed in job.seeds:
                got = read_seed_result(seed_path(folder, job, seed), seed_key(job, seed, data=data))
                if got is not None:
                    parts[seed] = got
            todo = [s for s in job.seeds if s not in parts]
            chunks = [[s] for s in todo] if sequential else ([todo] if todo else [])
            for chunk in chunks:
                result = run(job, chunk)
                for seed in chunk:
                    parts[seed] = result.seed_result(seed).to_dict()
                    write_seed_result(
                        seed_path(folder, job, seed), seed_key(job, seed, data=data), parts[seed]
                    )
            out.append(merge_seed_results([parts[s] for s in job.seeds]))
        return out


class RayEngine(_EngineBase):
    """A Ray cluster: Ray Data for extraction, one Ray task per (job, seed) for sweeps.

    Parameters
    ----------
    address:
        a running cluster (``"auto"``, ``"ray://head:10001"``); ``None`` starts a local one.
    num_cpus:
        CPUs of a started local cluster (default: all).
    workers:
        model replicas for extraction; default one per GPU, else one per
        ``cpus_per_worker`` CPUs of the cluster.
    cpus_per_worker, gpus_per_worker:
        resources of each replica (``gpus_per_worker`` defaults to 1 when the cluster has GPUs).
    cpus_per_task, gpus_per_task:
        resources of each sweep task (one model trained and tested).
    shard_size:
        rows per extraction shard (a multiple of the batch size); default 8 batches.
    """

    name = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        workers: int | None = None,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float | None = None,
        cpus_per_task: float = 1.0,
        gpus_per_task: float | None = None,
        shard_size: int | None = None,
    ) -> None:
        import_ray()  # fail now, with the install hint, rather than at the first operation
        for what, value in (("cpus_per_worker", cpus_per_worker), ("cpus_per_task", cpus_per_task)):
            if value <= 0:
                raise ConfigError(f"{what} must be > 0, got {value}")
        if workers is not None and workers < 1:
            raise ConfigError(f"workers must be >= 1, got {workers}")
        self.address = address
        self.num_cpus = num_cpus
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self.shard_size = shard_size
        self._session: RaySession | None = None

    @property
    def session(self) -> RaySession:
        """The connection, opened on first use."""
        if self._session is None:
            self._session = RaySession(address=self.address, num_cpus=self.num_cpus)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # --- extraction ----------------------------------------------------------------------------
    def extract(
        self,
        source: ModelSource,
        data: ImageDataset,
        *,
        layer: str,
        transform: Transform | None,
        batch_size: int = 256,
        device: str | None = None,
        pooling: Pooling = "flatten",
        stop_early: bool = False,
        values_out: Callable[[int, int], np.ndarray] | None = None,
    ) -> Embeddings:
        """Embed ``data`` with a pool of replicas of ``source`` (see ``ray_extract``).

        ``device`` applies inside each replica; by default a replica with a GPU uses it.
        """
        from thresher.distributed.ray_extract import plan_shards, ray_extract

        resources = self.session.resources()
        gpus = self.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources["GPU"] >= 1 else 0.0
        workers = self.workers or _default_workers(resources, self.cpus_per_worker, gpus)
        plan = plan_shards(
            len(data),
            batch_size=batch_size,
            shard_size=self.shard_size,
            workers=workers,
            cpus_per_worker=self.cpus_per_worker,
            gpus_per_worker=gpus,
        )
        model = source.build()
        return ray_extract(
            source,
            data,
            layer=layer,
            transform=transform,
            model_fp=model_fingerprint(model),
            dataset_fp=dataset_fingerprint_of(data, limit=None) or "",
            plan=plan,
            batch_size=batch_size,
            device=device,
            pooling=pooling,
            stop_early=stop_early,
            values_out=values_out,
        )

    # --- sweeps --------------------------------------------------------------------------------
    def sweep(
        self,
        jobs: Sequence[EvalJob],
        *,
        train: ImageDataset,
        test: ImageDataset,
        device: str | None = None,
        store: str | os.PathLike[str] | None = None,
    ) -> list[EvaluationResult]:
        """Every (job, seed) as a Ray task; results stored per task under ``store``.

        Tasks already stored under ``store`` (same model, recipe, data, subset and seed) are
        not run again, so an interrupted sweep resumes where it stopped.
        """
        check_jobs(jobs)
        ray = self.session.ray
        gpus = self.gpus_per_task
        if gpus is None:
            gpus = 1.0 if self.session.resources()["GPU"] >= 1 else 0.0
        task_device = device or ("cuda" if gpus else "cpu")
        store_dir = None if store is None else Path(store)
        data = data_key(train, test)

        done: dict[tuple[int, int], dict[str, Any]] = {}
        todo: list[tuple[int, int, str]] = []
        for j, job in enumerate(jobs):
            for seed in job.seeds:
                key = seed_key(job, seed, data=data)
                hit = (
                    None
                    if store_dir is None
                    else read_seed_result(seed_path(store_dir, job, seed), key)
                )
                if hit is not None:
                    done[(j, seed)] = hit
                else:
                    todo.append((j, seed, key))

        if todo:
            task = ray.remote(_evaluate_seed_task).options(
                num_cpus=self.cpus_per_task, num_gpus=gpus, max_retries=3
            )
            train_ref, test_ref = ray.put(train), ray.put(test)
            pending = {
                task.remote(train_ref, test_ref, jobs[j], seed, task_device): (j, seed, key)
                for j, seed, key in todo
            }
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    j, seed, key = pending.pop(ref)
                    result = ray.get(ref)
                    if store_dir is not None:  # at once: an interrupted sweep keeps it
                        write_seed_result(seed_path(store_dir, jobs[j], seed), key, result)
                    done[(j, seed)] = result
        return [
            merge_seed_results([done[(j, seed)] for seed in job.seeds])
            for j, job in enumerate(jobs)
        ]


def _evaluate_seed_task(
    train: ImageDataset, test: ImageDataset, job: EvalJob, seed: int, device: str
) -> dict[str, Any]:
    # Ray sets OMP_NUM_THREADS from num_cpus; torch reads it only at start-up, so apply it.
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    return evaluate_seed(train, test, job, seed, device)


def _default_workers(resources: dict[str, float], cpus_per_worker: float, gpus: float) -> int:
    if gpus:
        return max(1, int(resources["GPU"] // gpus))
    return max(1, int(resources["CPU"] // cpus_per_worker))


ENGINES: Registry[Callable[..., Any]] = Registry("engine", error=ConfigError)
ENGINES.register("local", lambda **_: LocalEngine())
ENGINES.register("ray", lambda **kw: RayEngine(**kw))


def get_engine(
    name: str = "local",
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    workers: int | None = None,
) -> LocalEngine | RayEngine:
    """The engine called ``name`` (``"local"`` or ``"ray"``).

    Parameters
    ----------
    address:
        Ray only: a running cluster's address (``--ray-address``); ``None`` starts a local one.
    num_cpus:
        Ray only: CPUs of a local cluster it starts.
    workers:
        Ray only: model replicas for extraction.

    Raises
    ------
    ConfigError
        an unknown engine (listing the valid ones), Ray options given to the local engine, or
        ``"ray"`` without Ray installed (saying ``pip install 'thresher[ray]'``).
    """
    factory = ENGINES.get(name)
    if name == "local":
        if address is not None:
            raise ConfigError(
                "--ray-address needs --engine ray; drop the address or choose the ray engine"
            )
        return factory()
    engine: LocalEngine | RayEngine = factory(address=address, num_cpus=num_cpus, workers=workers)
    return engine
