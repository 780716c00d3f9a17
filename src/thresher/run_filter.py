"""Filtering over run directories: filter, export, compare (what the CLI and the app call).

Each filter is stored under ``RUN/filter/<tag>/`` (``result.parquet``, ``params.json``, the
3D view ``cloud.html``/``cloud.png``) and ``RUN/filter/latest.json`` names the newest, so a
later ``export`` or the app can find it. ``compare`` stores one evaluation per method and kept
percentage under ``RUN/compare/`` and reuses them when rerun with the same settings.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from thresher.errors import ConfigError, RunError
from thresher.evaluate.paired import PairedDifference, paired_difference
from thresher.filter import SELECTORS, FilterResult, filter_dataset, reduce_dims, select
from thresher.filter.pipeline import PRESETS, preset
from thresher.runs import embed_run, evaluate_run, run_dataset, run_recipe
from thresher.store import Run, write_ids

# The filter's own comparison arms; every registered selector is one too (compare_methods()).
FILTER_ARMS = ("similar", "outliers", "half", "labels")


def compare_methods() -> tuple[str, ...]:
    """Every method ``compare`` accepts: the registered selectors, then the filter's arms."""
    return tuple(SELECTORS.names()) + FILTER_ARMS


EXPORT_FORMATS = ("txt", "csv", "json", "parquet", "folder", "index")
# GLOSH (the thesis's HDBSCAN score) takes minutes at 50k items and hours at 1M; above this
# size "auto" uses the distance to the k-th neighbour, which scales (benchmarks/README.md).
AUTO_GLOSH_MAX = 50_000


def resolve_outlier_score(name: str, n: int, *, preset_name: str = "thesis") -> str:
    """``"auto"``: the preset's score; for ``thesis`` GLOSH up to :data:`AUTO_GLOSH_MAX`
    items and ``knn`` above (GLOSH takes hours at 1M)."""
    if name != "auto":
        return name
    if preset_name != "thesis":
        return str(PRESETS[preset_name]["outlier_score"])
    return "glosh" if n <= AUTO_GLOSH_MAX else "knn"


@dataclass(frozen=True)
class FilterSettings:
    """One filtering request; percentages are fractions in [0, 1).

    ``preset`` names the defaults (:data:`thresher.filter.pipeline.PRESETS`: ``default``,
    what won on the planted-corruption benchmark, or ``thesis``); ``per_class``, ``k``,
    ``normalise`` and ``copies`` override the preset where not None.
    """

    outliers: float = 0.05
    similar: float = 0.05
    layer: str | None = None
    reduce: str = "pca"
    dims: int | None = 128
    per_class: bool | None = None
    method: str = "auto"
    outlier_score: str = "auto"
    baseline: str | None = None
    keep: float | None = None
    seed: int = 0
    preset: str = "default"
    normalise: str | None = None
    k: int | None = None
    copies: bool | None = None
    label_issues: float = 0.0

    def options(self) -> dict[str, Any]:
        """The preset's settings with this request's overrides."""
        opts = preset(self.preset)
        for name in ("per_class", "normalise", "k", "copies"):
            if getattr(self, name) is not None:
                opts[name] = getattr(self, name)
        return opts

    def tag(self) -> str:
        """A file-system-safe name that differs whenever the result would."""
        if self.baseline is not None:
            return f"{self.baseline}-keep{_pct(self.keep)}-seed{self.seed}"
        opts = self.options()
        per_class = {None: "auto", True: "perclass", False: "global"}[opts["per_class"]]
        parts = [
            f"o{_pct(self.outliers)}",
            f"s{_pct(self.similar)}",
            self.reduce + (str(self.dims) if self.reduce != "none" else ""),
            self.method,
            self.outlier_score,
            per_class,
            f"seed{self.seed}",
        ]
        if self.label_issues:
            parts.insert(2, f"l{_pct(self.label_issues)}")
        if self.layer:
            parts.insert(0, self.layer.replace(".", "_"))
        # per_class is already in the tag; the other preset settings are named when changed.
        same = {k: v for k, v in opts.items() if k != "per_class"} == {
            k: v for k, v in preset(self.preset).items() if k != "per_class"
        }
        if self.preset != "default" or not same:
            extra = f"{opts['normalise']}-k{opts['k']}-{'copies' if opts['copies'] else 'nocopies'}"
            parts.insert(0, self.preset if same else f"{self.preset}-{extra}")
        return "-".join(parts)


def _pct(fraction: float | None) -> str:
    return "none" if fraction is None else f"{100 * fraction:g}".replace(".", "p")


def check_settings(settings: FilterSettings) -> None:
    """Refuse a request the filter would refuse, without reading or writing anything."""
    from thresher.filter import DUPLICATE_METHODS, OUTLIER_SCORES, REDUCERS
    from thresher.filter.inputs import check_fraction

    if settings.baseline is not None:
        if settings.keep is None:
            raise ConfigError("a baseline needs --keep PCT (the share of the data to keep)")
        SELECTORS.get(settings.baseline)
        check_fraction(settings.keep, name="keep", upper_inclusive=True)
        return
    outliers = check_fraction(settings.outliers, name="outliers")
    similar = check_fraction(settings.similar, name="similar")
    labels = check_fraction(settings.label_issues, name="label issues")
    if outliers + similar + labels >= 1.0:
        raise ConfigError(
            f"outliers + similar + label issues = {100 * (outliers + similar + labels):g}% "
            "removes everything; keep their sum below 100% (e.g. 5 + 5)"
        )
    opts = settings.options()  # refuses an unknown preset
    from thresher.filter.pipeline import NORMALISATIONS

    if opts["normalise"] not in NORMALISATIONS:
        raise ConfigError(
            f"unknown normalise {opts['normalise']!r} (valid: {', '.join(NORMALISATIONS)})"
        )
    if int(opts["k"]) < 1:
        raise ConfigError(f"k (outlier-score neighbours) must be >= 1, got {opts['k']}")
    REDUCERS.get(settings.reduce)
    DUPLICATE_METHODS.get(settings.method)
    if settings.outlier_score != "auto":
        OUTLIER_SCORES.get(settings.outlier_score)


def run_filter(
    run: Run, settings: FilterSettings, *, device: str | None = None, cloud: bool = True
) -> FilterResult:
    """Filter the run's training split in the embedding space of ``settings.layer``."""
    check_settings(settings)  # before embedding: a refused request leaves the run untouched
    emb = embed_run(run, layer=settings.layer, device=device)
    if settings.baseline is not None:
        if settings.keep is None:
            raise ConfigError("a baseline needs --keep PCT (the share of the data to keep)")
        result = select(settings.baseline, emb, keep=settings.keep, seed=settings.seed)
    else:
        opts = settings.options()
        label_scores = None
        if settings.label_issues > 0:
            from thresher.run_labels import load_label_issues

            issues = load_label_issues(run)
            if not np.array_equal(issues.ids, emb.ids):
                raise RunError(
                    f"{run.path}: the stored label issues cover other samples than the "
                    "embeddings; re-run `thresher labels RUN`"
                )
            label_scores = issues.label_score
        images = None
        if opts["copies"] and settings.similar > 0:
            images = run_dataset(run, "train").images
        opts["outlier_score"] = resolve_outlier_score(
            settings.outlier_score, len(emb.ids), preset_name=settings.preset
        )
        result = filter_dataset(
            emb,
            outliers=settings.outliers,
            similar=settings.similar,
            reduce=settings.reduce,
            dims=settings.dims,
            method=settings.method,
            seed=settings.seed,
            images=images,
            label_scores=label_scores,
            label_issues=settings.label_issues,
            **opts,
        )
    tag = settings.tag()
    base = f"filter/{tag}"
    run.write_table(f"{base}/result.parquet", result.to_table())
    run.write_json(
        f"{base}/params.json",
        {"settings": settings.__dict__, "layer": emb.layer, "summary": result.to_dict()},
    )
    if cloud:
        _write_cloud(run, base, np.asarray(emb.values), result, seed=settings.seed)
    run.write_json("filter/latest.json", {"tag": tag})
    steps = run.manifest["steps"].get("filter", {})
    steps[tag] = {"layer": emb.layer, "kept": int(result.kept.sum()), "total": len(result)}
    run.record_step("filter", steps)
    return result


def _write_cloud(
    run: Run, base: str, values: np.ndarray, result: FilterResult, *, seed: int
) -> None:
    from thresher.optional import missing

    coords = reduce_dims(values, method="pca", n_dims=3, seed=seed)
    if coords.shape[1] < 3:  # fewer than 3 features: pad so the view still works
        coords = np.pad(coords, ((0, 0), (0, 3 - coords.shape[1])))
    run.write_array(f"{base}/cloud3d.npy", coords)
    # A core install has no plotting libraries: the result and the 3D coordinates are kept,
    # the pictures of them are skipped (the CLI says so).
    if missing("plotly", "matplotlib"):
        return
    from thresher.report.pointcloud import build_point_cloud, save_html, save_png

    cloud = build_point_cloud(
        coords,
        ids=result.ids,
        kept=result.kept,
        reason=result.reason,
        representative_id=result.representative_id,
        score=result.score,
    )
    save_html(cloud, run.file(f"{base}/cloud.html"))
    save_png(cloud, run.file(f"{base}/cloud.png"))


def load_filter(run: Run, tag: str | None = None) -> FilterResult:
    """A stored filter result (the newest when ``tag`` is None)."""
    if tag is None:
        if not run.exists("filter/latest.json"):
            raise RunError(f"{run.path} has no filter result; run `thresher filter` first")
        tag = str(run.read_json("filter/latest.json")["tag"])
    return FilterResult.from_table(run.read_table(f"filter/{tag}/result.parquet"))


def export_run(
    run: Run,
    *,
    fmt: str,
    out: str | os.PathLike[str],
    tag: str | None = None,
) -> dict[str, Any]:
    """Export the kept ids of a stored filter: an id list, an image folder, or an index."""
    from thresher.store.materialise import materialise

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    result = load_filter(run, tag)
    kept = result.kept_ids
    if fmt in ("txt", "csv", "json", "parquet"):
        columns = None
        if fmt in ("csv", "parquet"):
            sel = result.kept
            columns = {"score": result.score[sel].tolist()}
        path = write_ids(kept, out, fmt=fmt, columns=columns)
        return {"path": str(path), "format": fmt, "count": len(kept)}
    ds = run_dataset(run, "train")
    mode: Literal["copy", "index"] = "copy" if fmt == "folder" else "index"
    report = materialise(ds, kept, out, mode=mode)
    return {"path": report.path, "format": fmt, "count": report.count}


# --- compare ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CompareTable:
    """The thesis's Table 1 shape: rows = kept percentage, columns = methods."""

    keeps: tuple[float, ...]
    methods: tuple[str, ...]
    mean: np.ndarray  # (len(keeps), len(methods)) mean test accuracy
    std: np.ndarray  # same shape, sample std over seeds
    full_mean: float
    full_std: float
    seeds: int
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    # cell name -> its paired difference to random at the same kept share (same seeds)
    versus_random: dict[str, PairedDifference] = field(default_factory=dict)
    names: tuple[tuple[str, ...], ...] = ()  # cell names, (len(keeps), len(methods))

    def difference(self, i: int, j: int) -> PairedDifference | None:
        """The paired difference of cell ``(keep i, method j)`` to random, when compared."""
        if not self.names:
            return None
        return self.versus_random.get(self.names[i][j])

    def to_dict(self) -> dict[str, Any]:
        return {
            "keeps": list(self.keeps),
            "methods": list(self.methods),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "full": {"mean": self.full_mean, "std": self.full_std},
            "seeds": self.seeds,
            "cells": self.cells,
            "names": [list(row) for row in self.names],
        }


def subset_for(
    run: Run,
    method: str,
    keep: float,
    *,
    seed: int = 0,
    per_class: bool | None = None,
    filter_method: str = "auto",
    filter_preset: str = "default",
) -> FilterResult:
    """The subset a comparison method keeps at ``keep`` (fraction of the training set).

    ``labels`` removes the highest label-issue scores (``thresher labels`` must have run).
    """
    remove = 1.0 - keep
    kw: dict[str, Any] = {"method": filter_method, "preset": filter_preset}
    if method in SELECTORS:
        settings = FilterSettings(baseline=method, keep=keep, seed=seed)
    elif method == "similar":
        settings = FilterSettings(
            outliers=0.0, similar=remove, per_class=per_class, seed=seed, **kw
        )
    elif method == "outliers":
        settings = FilterSettings(
            outliers=remove, similar=0.0, per_class=per_class, seed=seed, **kw
        )
    elif method == "labels":
        settings = FilterSettings(
            outliers=0.0, similar=0.0, label_issues=remove, per_class=per_class, seed=seed, **kw
        )
    elif method == "half":
        settings = FilterSettings(
            outliers=remove / 2, similar=remove / 2, per_class=per_class, seed=seed, **kw
        )
    else:
        raise ConfigError(f"unknown method {method!r}; use any of {', '.join(compare_methods())}")
    return run_filter(run, settings, cloud=False)


def compare_run(
    run: Run,
    *,
    methods: tuple[str, ...],
    keeps: tuple[float, ...],
    seeds: int = 3,
    epochs: int | None = None,
    per_class: bool | None = None,
    filter_method: str = "auto",
    filter_preset: str = "default",
    device: str | None = None,
    progress: Any = None,
    engine: str = "local",
    ray_address: str | None = None,
    precision: str | None = None,
) -> CompareTable:
    """Retrain ``seeds`` models on each method's subset at each kept share; test accuracy.

    ``filter_method`` (exact, scalable or auto) is the near-duplicate algorithm of the filter
    methods; running the comparison once with each measures their agreement in retrained accuracy.
    Every cell is stored under ``RUN/compare/`` and reused when its ids, seeds and epochs match,
    so an interrupted comparison restarts where it stopped. ``engine="ray"`` trains the missing
    cells as parallel Ray tasks. ``precision`` overrides the run recipe's.
    """
    for m in methods:
        if m not in compare_methods():
            raise ConfigError(f"unknown method {m!r}; use any of {', '.join(compare_methods())}")
    for k in keeps:
        if not 0.0 < k <= 1.0:
            raise ConfigError(f"kept shares must be in (0, 100] percent, got {100 * k:g}")
    if not methods or not keeps:
        raise ConfigError("compare needs at least one method and one kept percentage")
    # Everything checked before the first filter result is written or model trained.
    for what, values in (("method", list(methods)), ("kept percentage", [_pct(k) for k in keeps])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"compare got the {what} {repeated[0]} twice; name each {what} once")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    run_recipe(run, epochs=epochs, precision=precision)  # refuses bad epochs or precision
    wanted: dict[str, np.ndarray | None] = {"full": None}
    for keep in keeps:
        for method in methods:
            name = f"{method}-keep{_pct(keep)}"
            name += {None: "", True: "-perclass", False: "-global"}[per_class]
            if method not in SELECTORS and filter_method != "auto":
                name += f"-{filter_method}"
            if method not in SELECTORS and filter_preset != "default":
                name += f"-{filter_preset}"
            subset = subset_for(
                run, method, keep, per_class=per_class, filter_method=filter_method,
                filter_preset=filter_preset,
            )  # fmt: skip
            wanted[name] = subset.kept_ids
    if engine != "local":
        _evaluate_on_engine(
            run, wanted, engine=engine, ray_address=ray_address, seeds=seeds, epochs=epochs,
            device=device, precision=precision,
        )  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for name, ids in wanted.items():
        if progress is not None:
            progress(name)
        results[name] = _cached_evaluation(
            run, name, ids, seeds=seeds, epochs=epochs, device=device, precision=precision
        )
    mean = np.full((len(keeps), len(methods)), math.nan)
    std = np.full_like(mean, math.nan)
    cells: dict[str, dict[str, Any]] = {}
    full = results.pop("full")
    grid = np.array(list(results), dtype=object).reshape(len(keeps), len(methods))
    for i in range(len(keeps)):
        for j in range(len(methods)):
            res = results[grid[i, j]]
            mean[i, j] = res["accuracy_mean"]
            std[i, j] = res["accuracy_std"]
            cells[grid[i, j]] = {"size": res["subset_size"], "accuracy": res["accuracy"]}
    versus = _versus_random(grid, methods, results)
    for name, diff in versus.items():
        cells[name]["versus_random"] = diff.to_dict()
    table = CompareTable(
        keeps=keeps,
        methods=methods,
        mean=mean,
        std=std,
        full_mean=float(full["accuracy_mean"]),
        full_std=float(full["accuracy_std"]),
        seeds=seeds,
        cells=cells,
        versus_random=dict(versus),
        names=tuple(tuple(str(v) for v in row) for row in grid),
    )
    run.write_json("compare/table.json", table.to_dict())
    return table


def _evaluation_key(
    ids: np.ndarray | None, *, seeds: int, epochs: int | None, precision: str | None = None
) -> dict[str, Any]:
    key: dict[str, Any] = {"ids_hash": _ids_hash(ids), "seeds": seeds, "epochs": epochs}
    if precision is not None:  # absent = the run recipe's (keys written before it existed)
        key["precision"] = precision
    return key


def _evaluate_on_engine(
    run: Run,
    wanted: dict[str, np.ndarray | None],
    *,
    engine: str,
    ray_address: str | None,
    seeds: int,
    epochs: int | None,
    device: str | None,
    precision: str | None = None,
) -> None:
    """Train the cells not stored yet on a distributed engine, storing each as the local path."""
    from thresher.distributed import evaluate_subsets_run, get_engine

    todo = {
        name: ids
        for name, ids in wanted.items()
        if not run.exists(f"compare/{name}.json")
        or run.read_json(f"compare/{name}.json").get("key")
        != _evaluation_key(ids, seeds=seeds, epochs=epochs, precision=precision)
    }
    if not todo:
        return
    with get_engine(engine, address=ray_address) as eng:
        done = evaluate_subsets_run(
            eng, run, todo, seeds=seeds, epochs=epochs, device=device, precision=precision
        )
    for name, res in done.items():
        key = _evaluation_key(todo[name], seeds=seeds, epochs=epochs, precision=precision)
        run.write_json(f"compare/{name}.json", {"key": key, "result": res.to_dict()})


def _cached_evaluation(
    run: Run,
    name: str,
    ids: np.ndarray | None,
    *,
    seeds: int,
    epochs: int | None,
    device: str | None,
    precision: str | None = None,
) -> dict[str, Any]:
    """An evaluation stored under ``compare/``; reused when its ids, seeds, epochs and
    precision match."""
    rel = f"compare/{name}.json"
    key = _evaluation_key(ids, seeds=seeds, epochs=epochs, precision=precision)
    if run.exists(rel):
        stored = run.read_json(rel)
        if stored.get("key") == key:
            return dict(stored["result"])
    res = evaluate_run(
        run,
        subset_ids=ids,
        seeds=seeds,
        epochs=epochs,
        device=device,
        name=name,
        precision=precision,
    )
    out = res.to_dict()
    run.write_json(rel, {"key": key, "result": out})
    return out


def _ids_hash(ids: np.ndarray | None) -> str:
    import hashlib

    if ids is None:
        return "full"
    return hashlib.sha256("\x00".join(sorted(map(str, ids))).encode()).hexdigest()


def _versus_random(
    grid: np.ndarray, methods: tuple[str, ...], results: dict[str, dict[str, Any]]
) -> dict[str, PairedDifference]:
    """Each non-random cell against random at the same kept share, paired by seed."""
    if "random" not in methods:
        return {}
    r = methods.index("random")
    out: dict[str, PairedDifference] = {}
    for i in range(grid.shape[0]):
        base = np.asarray(results[grid[i, r]]["accuracy"], dtype=np.float64)
        for j, method in enumerate(methods):
            if method == "random":
                continue
            acc = np.asarray(results[grid[i, j]]["accuracy"], dtype=np.float64)
            out[str(grid[i, j])] = paired_difference(acc, base)
    return out


def format_compare(table: CompareTable) -> list[list[str]]:
    """Rows of strings: the header, then one row per kept percentage: mean ± std (in %) and,
    when random was compared, the paired difference to it with its p-value."""
    rows = [["kept %", *table.methods]]
    for i, keep in enumerate(table.keeps):
        row = [f"{100 * keep:g}"]
        for j in range(len(table.methods)):
            text = f"{100 * table.mean[i, j]:.2f} ± {100 * table.std[i, j]:.2f}"
            diff = table.difference(i, j)
            if diff is not None:
                text += f" ({100 * diff.mean:+.2f}"
                text += f", p={diff.p_value:.2g})" if diff.n > 1 else ")"
            row.append(text)
        rows.append(row)
    return rows
