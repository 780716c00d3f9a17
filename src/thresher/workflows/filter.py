"""The ``filter`` step: outliers and near-duplicates of a run's embeddings, stored per tag.

Each filter is stored under ``RUN/filter/<tag>/`` (``result.parquet``, ``params.json``, the
3D view ``cloud.html``/``cloud.png``) and ``RUN/filter/latest.json`` names the newest, so a
later ``export``, ``compare`` or the app can find it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from thresher.errors import ConfigError, RunError
from thresher.filter import SELECTORS, FilterResult, filter_dataset, project, select
from thresher.filter.pipeline import PRESETS, preset
from thresher.store import Run
from thresher.store.run import dumps
from thresher.workflows.embed import embed_run
from thresher.workflows.run import has_images, is_embeddings_run, run_dataset

if TYPE_CHECKING:
    from thresher.embed.extract import Embeddings

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
    ``normalise`` and ``copies`` override the preset where not None. For a ``baseline``
    selector, ``per_class=True`` keeps ``keep`` of every class (a class-aware budget) instead
    of ``keep`` of the whole; ``dynamics_seeds`` is how many trainings the training-dynamics
    selectors (el2n, grand, forgetting) average.
    """

    outliers: float = 0.05
    similar: float = 0.05
    layer: str | None = None
    projection: str = "pca"
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
    dynamics_seeds: int = 3

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
            tag = f"{self.baseline}-keep{percent_tag(self.keep)}-seed{self.seed}"
            if self.per_class:  # a class-aware budget (the same share of every class)
                tag += "-perclass"
            if SELECTORS.get(self.baseline).needs_signals:
                tag += f"-dyn{self.dynamics_seeds}"
            return tag
        opts = self.options()
        per_class = {None: "auto", True: "perclass", False: "global"}[opts["per_class"]]
        parts = [
            f"o{percent_tag(self.outliers)}",
            f"s{percent_tag(self.similar)}",
            self.projection + (str(self.dims) if self.projection != "none" else ""),
            self.method,
            self.outlier_score,
            per_class,
            f"seed{self.seed}",
        ]
        if self.label_issues:
            parts.insert(2, f"l{percent_tag(self.label_issues)}")
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


def percent_tag(fraction: float | None) -> str:
    """A kept share as a file-name tag: 0.9 -> "90", 0.125 -> "12p5", None -> "none"."""
    return "none" if fraction is None else f"{100 * fraction:g}".replace(".", "p")


def check_settings(settings: FilterSettings) -> None:
    """Refuse a request the filter would refuse, without reading or writing anything."""
    from thresher.filter import DUPLICATE_METHODS, OUTLIER_SCORES, PROJECTIONS
    from thresher.validation import check_fraction

    if settings.baseline is not None:
        if settings.keep is None:
            raise ConfigError("a baseline needs --keep PCT (the share of the data to keep)")
        selector = SELECTORS.get(settings.baseline)
        check_fraction(settings.keep, name="keep", upper_inclusive=True)
        if selector.needs_signals and settings.dynamics_seeds < 1:
            raise ConfigError(f"--dynamics-seeds must be >= 1, got {settings.dynamics_seeds}")
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
    PROJECTIONS.get(settings.projection)
    DUPLICATE_METHODS.get(settings.method)
    if settings.outlier_score != "auto":
        OUTLIER_SCORES.get(settings.outlier_score)


def run_filter(
    run: Run,
    settings: FilterSettings,
    *,
    device: str | None = None,
    cloud: bool = True,
    reuse: bool = False,
) -> FilterResult:
    """Filter the run's training split in the embedding space of ``settings.layer``.

    ``reuse`` returns the result already stored for exactly these settings over the same
    embeddings (cache key) and ids, without filtering again: ``compare`` passes it, so that a
    second pass over more seeds does not redo minutes of neighbour search and clustering.
    Requests with label issues are always recomputed (the issues are stored outside the
    settings); delete ``RUN/filter`` to force a recomputation.
    """
    check_settings(settings)  # before embedding: a refused request leaves the run untouched
    emb = embed_run(run, layer=settings.layer, device=device)
    if reuse:
        stored = stored_filter(run, settings, emb)
        if stored is not None:
            return stored
    if settings.baseline is not None:
        if settings.keep is None:
            raise ConfigError("a baseline needs --keep PCT (the share of the data to keep)")
        signals = None
        selector = SELECTORS.get(settings.baseline)
        if selector.needs_labels and emb.labels is None:  # before any (long) training
            raise ConfigError(
                f"the {selector.name} selector needs labels, but {run.path}'s training data "
                "are unlabelled; use a label-free selector (random, kcenter, herding, ssp)"
            )
        if selector.needs_signals:
            signals = _dynamics_signals(run, emb.ids, seeds=settings.dynamics_seeds, device=device)
        result = select(
            settings.baseline,
            emb,
            keep=settings.keep,
            seed=settings.seed,
            signals=signals,
            stratified=bool(settings.per_class),
        )
    else:
        opts = settings.options()
        label_scores = None
        if settings.label_issues > 0:
            from thresher.workflows.labels import load_label_issues

            issues = load_label_issues(run)
            if not np.array_equal(issues.ids, emb.ids):
                raise RunError(
                    f"{run.path}: the stored label issues cover other samples than the "
                    "embeddings; re-run `thresher labels RUN`"
                )
            label_scores = issues.label_score
        images = None
        if opts["copies"] and settings.similar > 0:
            if is_embeddings_run(run) and not has_images(run):
                opts["copies"] = False  # no pixels to compare: the embeddings decide alone
            else:
                images = run_dataset(run, "train").images
        opts["outlier_score"] = resolve_outlier_score(
            settings.outlier_score, len(emb.ids), preset_name=settings.preset
        )
        result = filter_dataset(
            emb,
            outliers=settings.outliers,
            similar=settings.similar,
            projection=settings.projection,
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
        {
            "settings": settings.__dict__,
            "layer": emb.layer,
            "embeddings": emb.cache_key,  # what `reuse` checks the stored result against
            "summary": result.to_dict(),
        },
    )
    if cloud:
        _write_cloud(run, base, np.asarray(emb.values), result, seed=settings.seed)
    run.write_json("filter/latest.json", {"tag": tag})
    run.record_entries(
        "filter", {tag: {"layer": emb.layer, "kept": int(result.kept.sum()), "total": len(result)}}
    )
    return result


def stored_filter(run: Run, settings: FilterSettings, emb: Embeddings) -> FilterResult | None:
    """The result stored under ``filter/<tag>/`` if it was made with exactly ``settings`` over
    the embeddings ``emb`` (same cache key, same ids in the same order); else None."""
    base = f"filter/{settings.tag()}"
    if settings.label_issues > 0 or emb.cache_key is None:
        return None
    if not (run.exists(f"{base}/params.json") and run.exists(f"{base}/result.parquet")):
        return None
    params = run.read_json(f"{base}/params.json")
    if params.get("embeddings") != emb.cache_key:
        return None
    if params.get("settings") != json.loads(dumps(settings.__dict__)):
        return None
    result = FilterResult.from_table(run.read_table(f"{base}/result.parquet"))
    if not np.array_equal(result.ids, np.asarray(emb.ids).astype(str)):
        return None
    return result


def _dynamics_signals(
    run: Run, ids: np.ndarray, *, seeds: int, device: str | None
) -> dict[str, np.ndarray]:
    """The run's training dynamics (computed once, then cached) in the order of ``ids``."""
    from thresher.workflows.dynamics import dynamics_run

    dyn = dynamics_run(run, seeds=seeds, device=device)
    order = {str(i): k for k, i in enumerate(dyn.ids)}
    try:
        rows = np.array([order[str(i)] for i in ids], dtype=np.int64)
    except KeyError as err:
        raise RunError(
            f"{run.path}: the training dynamics do not cover image {err.args[0]!r} of the "
            "embeddings; delete RUN/dynamics and run again"
        ) from None
    return {name: values[rows] for name, values in dyn.signals().items()}


def _write_cloud(
    run: Run, base: str, values: np.ndarray, result: FilterResult, *, seed: int
) -> None:
    from thresher.optional import missing

    coords = project(values, method="pca", n_dims=3, seed=seed)
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
