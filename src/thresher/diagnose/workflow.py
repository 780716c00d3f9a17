"""Diagnostics over run directories (what the CLI and the report call).

Every analysis stores its result under ``RUN/diagnose/<name>/`` (``result.json``, a figure
``figure.png`` unless ``figures=False``, and for archetypes ``items.parquet`` and the prototype
images ``prototypes.npy``) and records a summary in the manifest step ``diagnose``. Embeddings
are the penultimate layer's (after pooling, before the classifier), extracted once and cached
in the run by :func:`thresher.runs.embed_run`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose.accuracy import ClassAccuracyResult, class_accuracy
from thresher.diagnose.adversaries import AdversaryResult, nearest_adversaries
from thresher.diagnose.archetypes import ARCHETYPES, ArchetypeResult, archetypes
from thresher.diagnose.checks import check_class_sizes, check_k, check_reference
from thresher.diagnose.colours import ColourResult, class_colours
from thresher.diagnose.features import (
    FeatureDensityResult,
    TopFeaturesResult,
    feature_density,
    top_features,
)
from thresher.diagnose.neighbours import nearest_neighbours
from thresher.errors import ConfigError, RunError
from thresher.optional import missing
from thresher.registry import Registry
from thresher.store import Run

AREA = "diagnose"


@dataclass(frozen=True)
class Analysis:
    """One registered analysis: everything the CLI, the figures and the report need.

    Attributes:
        name: registry name (``--only``, the folder ``RUN/diagnose/<name>/``, the report's
            section id).
        title: one line for listings.
        compute: ``compute(ctx) -> result``; the context shares the embeddings and one kNN graph.
        result_type: a frozen result type with ``to_dict``/``from_dict``, ``summary()`` and
            ``table()`` (rows of strings for the report).
        figure: ``"module:function"`` drawing ``[(label, result), ...]`` as a matplotlib figure
            (imported only when drawing, so the core needs no plotting library); ``""`` = none.
        heading: the report's section heading (default: ``title``).
        paper: what the paper calls it (``"Fig. 2"``), shown beside the heading.
        extra_sections: report sections that follow this one, ``(id, heading, paper)``, drawn
            by the report itself (the archetypes' prototypes, the adversaries' Table II).
    """

    name: str
    title: str
    compute: Callable[[_Context], Any]
    result_type: Any
    figure: str = ""
    heading: str = ""
    paper: str = ""
    extra_sections: tuple[tuple[str, str, str], ...] = ()


ANALYSES: Registry[Analysis] = Registry("analysis", error=ConfigError)


class _Context:
    """What the analyses share, each piece computed at most once."""

    def __init__(
        self,
        run: Run,
        *,
        k: int,
        top_k: int,
        reference: int | str | None,
        device: str | None,
        seed: int,
        threads: int | None,
    ) -> None:
        self.run = run
        self.k = check_k(k)
        self.top_k = check_k(top_k, name="top_k")
        self._reference = reference
        self.device = device
        self.seed = seed
        self.threads = threads
        self.classes: tuple[str, ...] = tuple(run.config.get("classes", ()))

    @functools.cached_property
    def train(self) -> Any:
        from thresher.runs import embed_run

        return embed_run(self.run, split="train", device=self.device)

    @functools.cached_property
    def test(self) -> Any:
        from thresher.runs import embed_run

        return embed_run(self.run, split="test", device=self.device)

    @functools.cached_property
    def neighbours(self) -> np.ndarray:
        return nearest_neighbours(np.asarray(self.train.values), k=self.k, threads=self.threads)

    @functools.cached_property
    def reference(self) -> int:
        """The given reference class, else the smallest training class (the paper's minority
        class)."""
        if self._reference is not None:
            return check_reference(self._reference, self.classes)
        labels = self.train.labels
        if labels is None:
            raise RunError("the run's training data are unlabelled; diagnostics need labels")
        counts = np.bincount(labels, minlength=len(self.classes)).astype(float)
        counts[counts == 0] = np.inf
        return int(np.argmin(counts))


def register_analysis(
    name: str,
    title: str,
    result_type: type,
    *,
    figure: str = "",
    heading: str = "",
    paper: str = "",
    extra_sections: tuple[tuple[str, str, str], ...] = (),
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator registering ``compute(ctx) -> result`` as the analysis ``name``.

    After it, ``thresher diagnose --only NAME``, the stored results, the figures and the
    report's sections all include it (in registration order); no other file changes.
    """

    def wrap(fn: Callable[[_Context], Any]) -> Callable[[_Context], Any]:
        ANALYSES.register(
            name,
            Analysis(
                name,
                title,
                fn,
                result_type,
                figure=figure,
                heading=heading or title,
                paper=paper,
                extra_sections=tuple(extra_sections),
            ),
        )
        return fn

    return wrap


_FIGURES = "thresher.report.diagnose_figures"


@register_analysis(
    "accuracy",
    "Per-class accuracy and imbalance",
    ClassAccuracyResult,
    figure=f"{_FIGURES}:accuracy_figure",
    paper="Fig. 2",
)
def _accuracy(ctx: _Context) -> ClassAccuracyResult:
    return class_accuracy(
        ctx.test.labels, ctx.test.predictions, train_labels=ctx.train.labels, classes=ctx.classes
    )


@register_analysis(
    "archetypes",
    "Archetypes and prototypes",
    ArchetypeResult,
    figure=f"{_FIGURES}:archetypes_figure",
    heading="Archetypes: true positives per class and archetype",
    paper="Fig. 3",
    extra_sections=(("prototypes", "Archetype prototypes", "Fig. 4"),),
)
def _archetypes(ctx: _Context) -> ArchetypeResult:
    return archetypes(
        np.asarray(ctx.train.values),
        ctx.train.labels,
        predictions=ctx.train.predictions,
        k=ctx.k,
        ids=ctx.train.ids,
        classes=ctx.classes,
        neighbours=ctx.neighbours,
        seed=ctx.seed,
    )


@register_analysis(
    "adversaries",
    "Nearest adversaries and validation false positives",
    AdversaryResult,
    figure=f"{_FIGURES}:adversaries_figure",
    heading="Training nearest adversaries vs validation false positives",
    paper="Fig. 5",
    extra_sections=(("table-ii", "KL divergence of validation false positives", "Table II"),),
)
def _adversaries(ctx: _Context) -> AdversaryResult:
    return nearest_adversaries(
        np.asarray(ctx.train.values),
        ctx.train.labels,
        ctx.test.labels,
        ctx.test.predictions,
        predictions=ctx.train.predictions,
        k=ctx.k,
        classes=ctx.classes,
        neighbours=ctx.neighbours,
        seed=ctx.seed,
    )


@register_analysis(
    "top_features",
    "Top-K feature embeddings per class",
    TopFeaturesResult,
    figure=f"{_FIGURES}:top_features_figure",
    heading="Top-K feature embeddings and their overlap",
    paper="Fig. 6",
)
def _top_features(ctx: _Context) -> TopFeaturesResult:
    return top_features(
        np.asarray(ctx.train.values), ctx.train.labels, top_k=ctx.top_k, classes=ctx.classes
    )


@register_analysis(
    "density",
    "Feature density of the reference class",
    FeatureDensityResult,
    figure=f"{_FIGURES}:density_figure",
    paper="Fig. 10",
)
def _density(ctx: _Context) -> FeatureDensityResult:
    return feature_density(
        np.asarray(ctx.train.values),
        ctx.train.labels,
        reference=ctx.reference,
        top_k=ctx.top_k,
        classes=ctx.classes,
    )


@register_analysis(
    "colours",
    "Colours that define each class",
    ColourResult,
    figure=f"{_FIGURES}:colours_figure",
    paper="Fig. 7",
)
def _colours(ctx: _Context) -> ColourResult:
    from thresher.runs import run_dataset, run_model, run_transform

    return class_colours(
        run_model(ctx.run),
        run_dataset(ctx.run, "train"),
        transform=run_transform(ctx.run),
        classes=ctx.classes,
        device=ctx.device,
    )


def resolve_only(only: Sequence[str] | str | None) -> list[str]:
    """Analysis names in registry order (all when ``only`` is empty); unknown names refused."""
    if only is None or only == "" or (not isinstance(only, str) and not only):
        return ANALYSES.in_order()
    names = [n.strip() for n in (only.split(",") if isinstance(only, str) else only)]
    for n in names:
        ANALYSES.get(n)  # raises ConfigError listing the valid names
    return [n for n in ANALYSES.in_order() if n in names]


def diagnose_run(
    run: Run,
    *,
    only: Sequence[str] | str | None = None,
    k: int = 5,
    top_k: int = 10,
    reference: int | str | None = None,
    device: str | None = None,
    seed: int = 0,
    threads: int | None = None,
    figures: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the analyses ``only`` (default all) on a trained run and store them.

    Parameters
    ----------
    run : a run directory with a trained model.
    only : analysis names (see ``ANALYSES.names()``), a comma-separated string, or all.
    k : nearest neighbours for archetypes and adversaries.
    top_k : features per class for the top-K overlap and the feature density.
    reference : reference class of the feature density (index or name; default the smallest
        training class).
    device : where the model runs (embeddings, saliency).
    seed : the random baseline's and the medoid samples' seed.
    threads : faiss threads.
    figures : also write ``figure.png`` per analysis (needs matplotlib).
    progress : called with each analysis's name before it starts.

    Returns
    -------
    ``{name: result}`` for each analysis run.
    """
    if "train" not in run.manifest["steps"]:
        raise RunError(f"{run.path} has no trained model; run `thresher train` into it first")
    names = resolve_only(only)
    ctx = _Context(
        run, k=k, top_k=top_k, reference=reference, device=device, seed=seed, threads=threads
    )
    _check_before_work(run, names, k=ctx.k, reference=reference)
    results: dict[str, Any] = {}
    steps = dict(run.manifest["steps"].get(AREA, {}))
    for name in names:
        if progress is not None:
            progress(name)
        result = ANALYSES.get(name).compute(ctx)
        save_result(run, name, result)
        if name == "archetypes":
            _save_prototypes(run, result)
        if figures and ANALYSES.get(name).figure and not missing("matplotlib"):
            # (a core install has no matplotlib: results are kept, figures skipped)
            from thresher.report.diagnose_figures import save_figure

            save_figure(name, [(run.path.name, result)], run.file(f"{AREA}/{name}/figure.png"))
        results[name] = result
        steps[name] = {"summary": result.summary(), "k": ctx.k, "top_k": ctx.top_k}
    run.record_step(AREA, steps)
    return results


def _check_before_work(
    run: Run, names: Sequence[str], *, k: int, reference: int | str | None
) -> None:
    """Refuse a request that is bound to fail before anything is extracted or written."""
    from thresher.runs import run_dataset

    needs_sizes = bool({"archetypes", "adversaries"} & set(names))
    if reference is None and not needs_sizes:
        return
    train = run_dataset(run, "train")
    if reference is not None:
        check_reference(reference, tuple(train.classes))
    if needs_sizes and train.labels is not None:
        check_class_sizes(np.asarray(train.labels), tuple(train.classes), k=k)


# --- storage ----------------------------------------------------------------------------------
_PER_ITEM = ("ids", "labels", "same_class", "archetype", "correct")


def save_result(run: Run, name: str, result: Any) -> None:
    """Write ``RUN/diagnose/<name>/result.json`` (archetypes: per-item columns to Parquet)."""
    data = result.to_dict()
    if isinstance(result, ArchetypeResult):
        for f in _PER_ITEM:
            data.pop(f)
        data["prototype_ids"] = [
            [result.ids[p] if p >= 0 else None for p in row] for row in result.prototype.tolist()
        ]
        run.write_table(f"{AREA}/{name}/items.parquet", result.item_table())
    run.write_json(f"{AREA}/{name}/result.json", {"name": name, "result": data})


def _save_prototypes(run: Run, result: ArchetypeResult) -> None:
    """``(C, 4, ch, H, W)`` prototype images (zeros for empty groups) as stored pixels."""
    from thresher.runs import run_dataset

    ds = run_dataset(run, "train")
    rows = result.prototype
    images = np.zeros((*rows.shape, *ds.images.shape[1:]), dtype=ds.images.dtype)
    for c, a in zip(*np.nonzero(rows >= 0), strict=True):
        images[c, a] = ds.images[rows[c, a]]
    run.write_array(f"{AREA}/archetypes/prototypes.npy", images)


def load_result(run: Run, name: str) -> Any:
    """A stored analysis result (``RunError`` when it has not been computed)."""
    analysis = ANALYSES.get(name)
    rel = f"{AREA}/{name}/result.json"
    if not run.exists(rel):
        raise RunError(
            f"{run.path} has no {name} diagnostics; run `thresher diagnose {run.path} "
            f"--only {name}` first"
        )
    data = dict(run.read_json(rel)["result"])
    if analysis.result_type is ArchetypeResult:
        table = run.read_table(f"{AREA}/{name}/items.parquet").to_pydict()
        data.pop("prototype_ids", None)
        data["ids"] = table["id"]
        data["labels"] = table["label"]
        data["same_class"] = table["same_class_neighbours"]
        data["archetype"] = [ARCHETYPES.index(a) for a in table["archetype"]]
        data["correct"] = table["correct"]
    return analysis.result_type.from_dict(data)


def stored_analyses(run: Run) -> list[str]:
    """Names of the analyses stored in ``run``, in report order."""
    return [n for n in ANALYSES.in_order() if run.exists(f"{AREA}/{n}/result.json")]


def load_prototypes(run: Run) -> np.ndarray | None:
    rel = f"{AREA}/archetypes/prototypes.npy"
    return np.asarray(run.read_array(rel, mmap=False)) if run.exists(rel) else None
