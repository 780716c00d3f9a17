"""The ``embed`` step: a layer's embeddings of a run's split, cached in the run.

Both engines write the same cache entry (``RUN/embeddings/<key>/``); the Ray engine streams
shards into it, so a restarted extraction resumes from the finished shards.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from thresher.distributed.engine import LocalEngine, RayEngine
from thresher.distributed.replica import ModelSource
from thresher.embed.extract import Embeddings
from thresher.errors import ConfigError
from thresher.store import Run, atomic_path
from thresher.workflows.run import (
    MODEL_COMMANDS,
    is_embeddings_run,
    run_dataset,
    run_input_shape,
    run_model,
    run_transform,
)


# --- embed ------------------------------------------------------------------------------------
def embed_run(
    run: Run,
    *,
    layer: str | None = None,
    split: str = "train",
    pooling: Literal["flatten", "avgpool"] = "flatten",
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

    if is_embeddings_run(run):
        return precomputed_embeddings(run, layer=layer, split=split, pooling=pooling)
    if engine != "local":
        if precision != "fp32":
            raise ConfigError(
                f"--precision {precision} embeds on the local engine only; drop --engine ray "
                "or embed in fp32"
            )
        from thresher.distributed import get_engine

        with get_engine(engine, address=ray_address) as eng:
            emb = embed_run_on(eng, run, layer=layer, split=split, pooling=pooling, device=device)
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
            pooling=pooling,
            device=device,
            precision=precision,
        )
    name = emb.layer
    step = {"layer": name, "split": split, "pooling": pooling, "shape": list(emb.values.shape)}
    if precision != "fp32":
        step["precision"] = precision
    key = f"{split}:{name}:{pooling}" + ("" if precision == "fp32" else f":{precision}")
    run.record_entries("embed", {key: step})
    return emb


def precomputed_embeddings(
    run: Run, *, layer: str | None = None, split: str = "train", pooling: str = "flatten"
) -> Embeddings:
    """The embeddings a run was made from (``thresher init --embeddings``).

    Raises ``RunError`` for another layer, split or pooling: those need the model."""
    from thresher.embed.cache import load_embeddings
    from thresher.errors import RunError
    from thresher.workflows.init import PRECOMPUTED_LAYER

    asked = []
    if layer not in (None, PRECOMPUTED_LAYER):
        asked.append(f"layer {layer!r}")
    if split != "train":
        asked.append(f"the {split} split")
    if pooling != "flatten":
        asked.append(f"{pooling} pooling")
    if asked:
        raise RunError(
            f"{run.path} holds precomputed embeddings of its training images only; for "
            f"{' and '.join(asked)} the model is needed: make a run with it ({MODEL_COMMANDS})"
        )
    return load_embeddings(run, str(run.config["embeddings"]["key"]))


_CACHE_META_VERSION = 1  # thresher.embed.cache's entry format, written identically here


def embed_run_on(
    engine: LocalEngine | RayEngine,
    run: Run,
    *,
    layer: str | None = None,
    split: str = "train",
    pooling: Literal["flatten", "avgpool"] = "flatten",
    device: str | None = None,
    batch_size: int = 256,
) -> Embeddings:
    """:func:`embed_run` on ``engine``; the entry lands in the run's cache.

    Returns
    -------
    Embeddings
        ``values`` memory-mapped from ``RUN/embeddings/<key>/values.npy``, ``cache_key`` set.
    """
    from thresher.workflows.embed import embed_run

    if isinstance(engine, LocalEngine) or is_embeddings_run(run):
        return embed_run(run, layer=layer, split=split, pooling=pooling, device=device)

    from thresher.embed import default_layer
    from thresher.embed.cache import cache_key, entry_dir, load_embeddings, transform_token
    from thresher.embed.extract import dataset_fingerprint_of
    from thresher.models import model_spec
    from thresher.models.fingerprint import model_fingerprint

    net = run_model(run)
    ds = run_dataset(run, split)
    cfg = run.config["model"]
    name = layer or default_layer(
        net, model_spec(cfg["name"]).feature_layer, input_shape=run_input_shape(run, ds)
    )
    transform = run_transform(run)
    expected = {
        "layer": name,
        "pooling": pooling,
        "model_fingerprint": model_fingerprint(net),
        "dataset_fingerprint": dataset_fingerprint_of(ds, limit=None) or "",
        "transform": transform_token(transform),
    }
    key = cache_key(
        model_fingerprint=expected["model_fingerprint"],
        layer=name,
        pooling=pooling,
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
            run, rel, engine, source, ds, name, transform, batch_size, device, pooling
        )
        write_cache_entry(run, rel, key, expected, emb)
    emb = load_embeddings(run, key)
    step = {"layer": name, "split": split, "pooling": pooling, "shape": list(emb.values.shape)}
    run.record_entries("embed", {f"{split}:{name}:{pooling}": step})
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
    pooling: Literal["flatten", "avgpool"],
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
            pooling=pooling,
            values_out=values_out,
        )
        for out in mapped:
            out.flush()  # then atomic_path fsyncs and renames it on leaving the block
        mapped.clear()
    return emb


def write_cache_entry(
    run: Run, rel: str, key: str, expected: Mapping[str, str], emb: Embeddings
) -> None:
    """ids/labels/predictions, then meta.json last (its presence marks the entry complete);
    the values must be written to ``rel/values.npy`` already."""
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
