"""The ``compare`` step: every method at every kept share, retrained with the same seeds.

One evaluation per method and kept percentage is stored under ``RUN/compare/`` and reused when
rerun with the same settings; each cell is paired with random at the same size by seed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.evaluate.paired import PairedDifference, paired_difference
from thresher.filter import SELECTORS, FilterResult
from thresher.store import Run
from thresher.workflows.evaluate import evaluate_run
from thresher.workflows.filter import FilterSettings, percent_tag, run_filter
from thresher.workflows.run import decoding_once, run_recipe

# The filter's own comparison arms; every registered selector is one too (compare_methods()).
FILTER_ARMS = ("similar", "outliers", "half", "labels")
SUBSET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def compare_methods() -> tuple[str, ...]:
    """Every method ``compare`` accepts: the registered selectors, then the filter's arms."""
    return tuple(SELECTORS.names()) + FILTER_ARMS


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
    # user-chosen subsets (``subsets=``): name -> size, accuracies, its class-matched random
    # twin's accuracies and the paired difference (same seeds)
    subsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # what mean/std/cells hold: "accuracy" (classification) or "score" (detection: the
    # thesis's 0.1 mAP50 + 0.9 mAP50-95; cells also carry map50 and map50_95 per seed)
    metric: str = "accuracy"

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
            "subsets": self.subsets,
            "metric": self.metric,
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
        settings = FilterSettings(baseline=method, keep=keep, seed=seed, per_class=per_class)
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
    return run_filter(run, settings, cloud=False, reuse=True)


@decoding_once  # every cell trains and tests on the same decoded splits
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
    subsets: Mapping[str, np.ndarray] | None = None,
) -> CompareTable:
    """Retrain ``seeds`` models on each method's subset at each kept share; test accuracy.

    ``subsets`` are user-chosen id sets (``{name: ids}``, e.g. the curated set of
    :func:`thresher.workflows.curation.curated_set`): each is retrained at its own size beside a
    random subset with the same class counts, paired by seed (``CompareTable.subsets``).

    ``filter_method`` (exact, scalable or auto) is the near-duplicate algorithm of the filter
    methods; running the comparison once with each measures their agreement in retrained accuracy.
    Every cell is stored under ``RUN/compare/`` and reused when its ids, seeds and epochs match,
    so an interrupted comparison restarts where it stopped; each method's subset is filtered
    once and reused by later comparisons over the same embeddings (:func:`run_filter`'s
    ``reuse``). ``engine="ray"`` trains the missing
    cells as parallel Ray tasks. ``precision`` overrides the run recipe's.
    """
    for m in methods:
        if m not in compare_methods():
            raise ConfigError(f"unknown method {m!r}; use any of {', '.join(compare_methods())}")
    for k in keeps:
        if not 0.0 < k <= 1.0:
            raise ConfigError(f"kept shares must be in (0, 100] percent, got {100 * k:g}")
    subsets = dict(subsets or {})
    if not subsets and (not methods or not keeps):
        raise ConfigError("compare needs at least one method and one kept percentage")
    if bool(methods) != bool(keeps):
        raise ConfigError("methods and kept percentages go together: give both or neither")
    twins: dict[str, np.ndarray] = {}
    for sub_name, sub_ids in subsets.items():
        if not SUBSET_NAME.match(sub_name):
            raise ConfigError(
                f"subset name {sub_name!r}: use 1-40 letters, digits, '_' or '-' (it names files)"
            )
        if len(sub_ids) == 0:
            raise ConfigError(f"subset {sub_name!r} is empty; a model needs images to train on")
        from thresher.workflows.evaluate import random_like

        twins[sub_name] = random_like(run, np.asarray(sub_ids))  # unknown ids refused here
    # Everything checked before the first filter result is written or model trained.
    for what, values in (
        ("method", list(methods)),
        ("kept percentage", [percent_tag(k) for k in keeps]),
    ):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(f"compare got the {what} {repeated[0]} twice; name each {what} once")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds must be an integer >= 1, got {seeds!r}")
    # refuses bad epochs or a precision this machine cannot train in (before any filter runs)
    run_recipe(
        run, epochs=epochs, precision=precision, device=device, check_device=engine == "local"
    )
    from thresher.workflows.evaluate_detection import is_detection_run

    detection = is_detection_run(run)
    metric = "score" if detection else "accuracy"
    if detection and engine != "local":
        raise ConfigError("a detection run's comparison trains on this machine only; drop --engine")
    wanted: dict[str, np.ndarray | None] = {"full": None}
    for keep in keeps:
        for method in methods:
            name = f"{method}-keep{percent_tag(keep)}"
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
    for sub_name, sub_ids in subsets.items():
        wanted[f"subset-{sub_name}"] = np.asarray(sub_ids).astype(str)
        wanted[f"subset-{sub_name}-random"] = twins[sub_name]
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
            run, name, ids, seeds=seeds, epochs=epochs, device=device, precision=precision,
            detection=detection,
        )  # fmt: skip
    mean = np.full((len(keeps), len(methods)), math.nan)
    std = np.full_like(mean, math.nan)
    cells: dict[str, dict[str, Any]] = {}
    full = results.pop("full")
    user: dict[str, dict[str, Any]] = {}
    for sub_name in subsets:
        own = results.pop(f"subset-{sub_name}")
        twin = results.pop(f"subset-{sub_name}-random")
        diff = paired_difference(
            np.asarray(own[metric], np.float64), np.asarray(twin[metric], np.float64)
        )
        user[sub_name] = {
            "size": own["subset_size"],
            metric: own[metric],
            f"random_{metric}": twin[metric],
            "versus_random": diff.to_dict(),
        }
    grid = np.array(list(results), dtype=object).reshape(len(keeps), len(methods))
    for i in range(len(keeps)):
        for j in range(len(methods)):
            res = results[grid[i, j]]
            mean[i, j] = res[f"{metric}_mean"]
            std[i, j] = res[f"{metric}_std"]
            cells[grid[i, j]] = {"size": res["subset_size"], metric: res[metric]}
            if detection:
                cells[grid[i, j]].update(map50=res["map50"], map50_95=res["map50_95"])
    versus = _versus_random(grid, methods, results, metric=metric)
    for name, diff in versus.items():
        cells[name]["versus_random"] = diff.to_dict()
    table = CompareTable(
        keeps=keeps,
        methods=methods,
        mean=mean,
        std=std,
        full_mean=float(full[f"{metric}_mean"]),
        full_std=float(full[f"{metric}_std"]),
        seeds=seeds,
        cells=cells,
        versus_random=dict(versus),
        names=tuple(tuple(str(v) for v in row) for row in grid),
        subsets=user,
        metric=metric,
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
    from thresher.distributed import get_engine
    from thresher.workflows.evaluate import evaluate_subsets_run

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
    detection: bool = False,
) -> dict[str, Any]:
    """An evaluation stored under ``compare/``; reused when its ids, seeds, epochs and
    precision match."""
    rel = f"compare/{name}.json"
    key = _evaluation_key(ids, seeds=seeds, epochs=epochs, precision=precision)
    if run.exists(rel):
        stored = run.read_json(rel)
        if stored.get("key") == key:
            return dict(stored["result"])
    if detection:
        from thresher.workflows.evaluate_detection import evaluate_detection_run

        found = evaluate_detection_run(
            run, subset_ids=ids, seeds=seeds, epochs=epochs, device=device, name=name,
            precision=precision,
        )  # fmt: skip
        run.write_json(rel, {"key": key, "result": found})
        return found
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
    grid: np.ndarray,
    methods: tuple[str, ...],
    results: dict[str, dict[str, Any]],
    *,
    metric: str = "accuracy",
) -> dict[str, PairedDifference]:
    """Each non-random cell against random at the same kept share, paired by seed."""
    if "random" not in methods:
        return {}
    r = methods.index("random")
    out: dict[str, PairedDifference] = {}
    for i in range(grid.shape[0]):
        base = np.asarray(results[grid[i, r]][metric], dtype=np.float64)
        for j, method in enumerate(methods):
            if method == "random":
                continue
            acc = np.asarray(results[grid[i, j]][metric], dtype=np.float64)
            out[str(grid[i, j])] = paired_difference(acc, base)
    return out


def format_compare(table: CompareTable) -> list[list[str]]:
    """Rows of strings: the header, then one row per kept percentage: mean ± std (accuracy in
    %, a detection score as is) and, when random was compared, the paired difference to it
    with its p-value."""
    scale, digits = (100.0, 2) if table.metric == "accuracy" else (1.0, 3)
    rows = [["kept %", *table.methods]]
    for i, keep in enumerate(table.keeps):
        row = [f"{100 * keep:g}"]
        for j in range(len(table.methods)):
            text = f"{scale * table.mean[i, j]:.{digits}f} ± {scale * table.std[i, j]:.{digits}f}"
            diff = table.difference(i, j)
            if diff is not None:
                text += f" ({scale * diff.mean:+.{digits}f}"
                text += f", p={diff.p_value:.2g})" if diff.n > 1 else ")"
            row.append(text)
        rows.append(row)
    return rows


def format_subsets(table: CompareTable) -> list[list[str]]:
    """Rows of strings for the user-chosen subsets: size, accuracy, its class-matched random
    twin's and the paired difference (points, p-value). Only the header when there are none."""
    import statistics

    m = table.metric
    scale, digits, unit = (100.0, 2, " %") if m == "accuracy" else (1.0, 3, "")
    twin = "random, same class counts" if m == "accuracy" else "random, same size"
    rows = [["subset", "images", f"{m}{unit}", f"{twin}{unit}", "difference"]]
    for name, cell in table.subsets.items():
        acc, base = cell[m], cell[f"random_{m}"]

        def text(values: list[float]) -> str:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{scale * statistics.fmean(values):.{digits}f} ± {scale * sd:.{digits}f}"

        diff = cell["versus_random"]
        note = f"{scale * diff['mean']:+.{digits}f}"
        if diff.get("p_value") is not None and len(acc) > 1:
            note += f" (p={diff['p_value']:.2g})"
        rows.append([name, str(cell["size"]), text(acc), text(base), note])
    return rows
