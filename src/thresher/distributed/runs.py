"""Engine-aware workflows over run directories (what ``--engine`` in the CLI calls).

* :func:`embed_run_on` writes the Ray engine's embeddings into the run's embedding cache in
  the layout of :mod:`thresher.embed.cache` (same key, same files), so a later local
  ``embed_run`` reuses them and vice versa; with the local engine it is ``embed_run`` itself.
* :func:`evaluate_subsets_run` evaluates many named subsets of a run's training split as one
  sweep, stored like ``evaluate_run`` (``RUN/evaluate/<name>.parquet|json``), with the Ray
  engine's per-(subset, seed) results under ``RUN/sweep/`` so that an interrupted sweep resumes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from thresher.distributed.engine import LocalEngine, RayEngine
from thresher.distributed.replica import ModelSource
from thresher.distributed.sweep import EvalJob
from thresher.embed.extract import Embeddings
from thresher.errors import ConfigError
from thresher.evaluate.result import EvaluationResult
from thresher.store import Run, atomic_path

SWEEP_DIR = "sweep"
_CACHE_META_VERSION = 1  # thresher.embed.cache's entry format, written identically here


def embed_run_on(
    engine: LocalEngine | RayEngine,
    run: Run,
    *,
    layer: str | None = None,
    split: str = "train",
    reduce: Literal["flatten", "avgpool"] = "flatten",
    device: str | None = None,
    batch_size: int = 256,
) -> Embeddings:
    """:func:`thresher.runs.embed_run` on ``engine``; the entry lands in the run's cache.

    Returns
    -------
    Embeddings
        ``values`` memory-mapped from ``RUN/embeddings/<key>/values.npy``, ``cache_key`` set.
    """
    from thresher.runs import embed_run

    if isinstance(engine, LocalEngine):
        return embed_run(run, layer=layer, split=split, reduce=reduce, device=device)

    from thresher.embed import default_layer
    from thresher.embed.cache import cache_key, entry_dir, load_embeddings, transform_token
    from thresher.embed.extract import dataset_fingerprint_of
    from thresher.models import model_spec
    from thresher.models.fingerprint import model_fingerprint
    from thresher.runs import run_dataset, run_input_shape, run_model, run_transform

    net = run_model(run)
    ds = run_dataset(run, split)
    cfg = run.config["model"]
    name = layer or default_layer(
        net, model_spec(cfg["name"]).feature_layer, input_shape=run_input_shape(run, ds)
    )
    transform = run_transform(run)
    expected = {
        "layer": name,
        "reduce": reduce,
        "model_fingerprint": model_fingerprint(net),
        "dataset_fingerprint": dataset_fingerprint_of(ds, limit=None) or "",
        "transform": transform_token(transform),
    }
    key = cache_key(
        model_fingerprint=expected["model_fingerprint"],
        layer=name,
        reduce=reduce,
        dataset_fingerprint=expected["dataset_fingerprint"],
        transform=expected["transform"],
    )
    rel = entry_dir(key)
    if not _complete_entry(run, rel, expected):
        run.file(f"{rel}/meta.json").unlink(missing_ok=True)
        source = ModelSource.from_module(
            net, name=cfg["name"], num_classes=cfg["num_classes"], in_channels=cfg["in_channels"]
        )
        emb = _extract_into(
            run, rel, engine, source, ds, name, transform, batch_size, device, reduce
        )
        _write_entry(run, rel, key, expected, emb)
    emb = load_embeddings(run, key)
    steps = run.manifest["steps"].get("embed", {})
    steps[f"{split}:{name}:{reduce}"] = {
        "layer": name,
        "split": split,
        "reduce": reduce,
        "shape": list(emb.values.shape),
    }
    run.record_step("embed", steps)
    return emb


def _complete_entry(run: Run, rel: str, expected: Mapping[str, str]) -> bool:
    """A stored entry made for ``expected`` with the full forward (as ``cached_extract``)."""
    if not run.exists(f"{rel}/meta.json"):
        return False
    try:
        meta = run.read_json(f"{rel}/meta.json")
    except (OSError, ValueError):
        return False
    return (
        meta.get("version") == _CACHE_META_VERSION
        and all(meta.get(k) == v for k, v in expected.items())
        and bool(meta.get("full_forward"))
    )


def _extract_into(
    run: Run,
    rel: str,
    engine: RayEngine,
    source: ModelSource,
    ds: Any,
    layer: str,
    transform: Any,
    batch_size: int,
    device: str | None,
    reduce: Literal["flatten", "avgpool"],
) -> Embeddings:
    """Rows go straight into a memory-mapped ``.npy`` renamed into place when complete."""
    with contextlib.ExitStack() as stack:
        mapped: list[np.memmap[Any, Any]] = []

        def values_out(rows: int, dim: int) -> np.ndarray:
            tmp = stack.enter_context(atomic_path(run.file(f"{rel}/values.npy")))
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
            mapped.append(out)
            return out

        emb = engine.extract(
            source,
            ds,
            layer=layer,
            transform=transform,
            batch_size=batch_size,
            device=device,
            reduce=reduce,
            values_out=values_out,
        )
        for out in mapped:
            out.flush()  # then atomic_path fsyncs and renames it on leaving the block
        mapped.clear()
    return emb


def _write_entry(
    run: Run, rel: str, key: str, expected: Mapping[str, str], emb: Embeddings
) -> None:
    """ids/labels/predictions, then meta.json last (its presence marks the entry complete)."""
    run.write_array(f"{rel}/ids.npy", emb.ids)
    for what, arr in (("labels", emb.labels), ("predictions", emb.predictions)):
        if arr is not None:
            run.write_array(f"{rel}/{what}.npy", arr)
        else:
            run.file(f"{rel}/{what}.npy").unlink(missing_ok=True)
    run.write_json(
        f"{rel}/meta.json",
        {
            **expected,
            "version": _CACHE_META_VERSION,
            "key": key,
            "shape": list(emb.values.shape),
            "labelled": emb.labels is not None,
            "predictions": emb.predictions is not None,
            "full_forward": True,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        },
    )


def evaluate_subsets_run(
    engine: LocalEngine | RayEngine,
    run: Run,
    subsets: Mapping[str, np.ndarray | None],
    *,
    seeds: int = 5,
    epochs: int | None = None,
    device: str | None = None,
    precision: str | None = None,
) -> dict[str, EvaluationResult]:
    """Evaluate every named subset of the run's training split (``None`` = all of it).

    Each result is stored as ``evaluate_run`` stores one (``RUN/evaluate/<name>.parquet`` and
    ``.json``). With the Ray engine all (subset, seed) pairs run as parallel tasks and each is
    kept under ``RUN/sweep/`` as it finishes.

    Returns
    -------
    dict
        name -> :class:`~thresher.evaluate.EvaluationResult`, in the order of ``subsets``.
    """
    from thresher.runs import run_dataset, run_recipe

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    rec = run_recipe(run, epochs=epochs, precision=precision)
    model = run.config["model"]["name"]
    jobs = [
        EvalJob(
            name=safe_name(name),
            model=model,
            recipe=rec,
            seeds=tuple(range(seeds)),
            subset_ids=None if ids is None else np.asarray(ids).astype(str),
        )
        for name, ids in subsets.items()
    ]
    results = engine.sweep(
        jobs,
        train=run_dataset(run, "train"),
        test=run_dataset(run, "test"),
        device=device,
        store=run.file(SWEEP_DIR),
    )
    out: dict[str, EvaluationResult] = {}
    for name, job, result in zip(subsets, jobs, results, strict=True):
        run.write_table(f"evaluate/{job.name}.parquet", result.to_table())
        run.write_json(f"evaluate/{job.name}.json", result.to_dict())
        out[name] = result
    return out


def safe_name(name: str) -> str:
    """``name`` with everything but letters, digits, ``-`` and ``_`` replaced (as
    ``evaluate_run`` names its files)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
