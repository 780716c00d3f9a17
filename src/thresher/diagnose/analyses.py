"""The registry of diagnostics (one record per analysis) and the built-in analyses.

An analysis computes a result from a :class:`AnalysisContext` (the run's embeddings, one shared
kNN graph, the classes); the ``diagnose`` workflow builds the context, runs the selected
analyses in registration order and stores each result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thresher.diagnose.accuracy import ClassAccuracyResult, class_accuracy
from thresher.diagnose.adversaries import AdversaryResult, nearest_adversaries
from thresher.diagnose.archetypes import ArchetypeResult, archetypes
from thresher.diagnose.colours import ColourResult, class_colours
from thresher.diagnose.features import (
    FeatureDensityResult,
    TopFeaturesResult,
    feature_density,
    top_features,
)
from thresher.errors import ConfigError, RunError
from thresher.neighbours import nearest_neighbours
from thresher.registry import Registry
from thresher.validation import check_k, check_reference


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
    compute: Callable[[AnalysisContext], Any]
    result_type: Any
    figure: str = ""
    heading: str = ""
    paper: str = ""
    extra_sections: tuple[tuple[str, str, str], ...] = ()


ANALYSES: Registry[Analysis] = Registry("analysis", error=ConfigError)


class AnalysisContext:
    """What the analyses share, each piece computed at most once.

    The embeddings and the model come from loaders (the ``diagnose`` workflow passes the run's),
    so this package never reads a run directory itself.

    Parameters
    ----------
    classes : the ``K`` class names.
    embeddings : ``split -> Embeddings`` of the penultimate layer (``"train"``, ``"test"``).
    model_input : ``() -> (model, training ImageDataset, transform)`` (for the colours).
    k, top_k, reference, device, seed, threads : the analyses' settings.
    nnb_weighting : how nearest-adversary counts become a forecast
        (:data:`thresher.diagnose.adversaries.WEIGHTINGS`).
    """

    def __init__(
        self,
        *,
        classes: Sequence[str],
        embeddings: Callable[[str], Any],
        model_input: Callable[[], tuple[Any, Any, Any]],
        k: int,
        top_k: int,
        reference: int | str | None,
        device: str | None,
        seed: int,
        threads: int | None,
        nnb_weighting: str = "class-prior",
    ) -> None:
        from thresher.diagnose.adversaries import WEIGHTINGS

        if nnb_weighting not in WEIGHTINGS:  # before any embedding is computed
            raise ConfigError(
                f"unknown --nnb-weighting {nnb_weighting!r}; use one of {', '.join(WEIGHTINGS)}"
            )
        self.nnb_weighting = nnb_weighting
        self.k = check_k(k)
        self.top_k = check_k(top_k, name="top_k")
        self._reference = reference
        self._embeddings = embeddings
        self._model_input = model_input
        self.device = device
        self.seed = seed
        self.threads = threads
        self.classes: tuple[str, ...] = tuple(classes)

    @functools.cached_property
    def train(self) -> Any:
        """The training split's embeddings."""
        return self._embeddings("train")

    @functools.cached_property
    def test(self) -> Any:
        """The test split's embeddings."""
        return self._embeddings("test")

    def model_input(self) -> tuple[Any, Any, Any]:
        """The model, its training images and its input transform."""
        return self._model_input()

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

    def wrap(fn: Callable[[AnalysisContext], Any]) -> Callable[[AnalysisContext], Any]:
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
def _accuracy(ctx: AnalysisContext) -> ClassAccuracyResult:
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
def _archetypes(ctx: AnalysisContext) -> ArchetypeResult:
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
def _adversaries(ctx: AnalysisContext) -> AdversaryResult:
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
        weighting=ctx.nnb_weighting,
    )


@register_analysis(
    "top_features",
    "Top-K feature embeddings per class",
    TopFeaturesResult,
    figure=f"{_FIGURES}:top_features_figure",
    heading="Top-K feature embeddings and their overlap",
    paper="Fig. 6",
)
def _top_features(ctx: AnalysisContext) -> TopFeaturesResult:
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
def _density(ctx: AnalysisContext) -> FeatureDensityResult:
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
def _colours(ctx: AnalysisContext) -> ColourResult:
    model, images, transform = ctx.model_input()
    return class_colours(
        model,
        images,
        transform=transform,
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
