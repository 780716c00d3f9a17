"""The ``diagnose`` step: the registered analyses over a run's embeddings, stored per analysis.

Every analysis stores its result under ``RUN/diagnose/<name>/`` (``result.json``, a figure
``figure.png`` unless ``figures=False``, and for archetypes ``items.parquet`` and the prototype
images ``prototypes.npy``) and records a summary in the manifest step ``diagnose``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from thresher.diagnose.analyses import ANALYSES, AnalysisContext, resolve_only
from thresher.diagnose.archetypes import ARCHETYPES, ArchetypeResult
from thresher.errors import RunError
from thresher.optional import missing
from thresher.store import Run
from thresher.validation import check_class_sizes, check_reference
from thresher.workflows.embed import embed_run
from thresher.workflows.run import (
    has_images,
    is_embeddings_run,
    require_model,
    run_dataset,
    run_model,
    run_transform,
)

AREA = "diagnose"


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
    nnb_weighting: str = "class-prior",
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
    nnb_weighting : ``"class-prior"`` or ``"paper"``: the nearest adversaries' forecast
        (:mod:`thresher.diagnose.adversaries`).

    Returns
    -------
    ``{name: result}`` for each analysis run.
    """
    from thresher.workflows.evaluate_detection import require_classifier

    require_classifier(run, "thresher diagnose")
    embeddings_only = is_embeddings_run(run)
    if not embeddings_only:  # an embeddings run has what the embedding analyses need
        require_model(run, "thresher diagnose")
    names = resolve_only(only)

    def model_input() -> tuple[Any, Any, Any]:
        require_model(run, "this analysis (it runs the model on the images)")
        return run_model(run), run_dataset(run, "train"), run_transform(run)

    ctx = AnalysisContext(
        classes=run.config.get("classes", ()),
        embeddings=lambda split: embed_run(run, split=split, device=device),
        model_input=model_input,
        k=k,
        top_k=top_k,
        reference=reference,
        device=device,
        seed=seed,
        threads=threads,
        nnb_weighting=nnb_weighting,
    )
    _check_before_work(run, names, k=ctx.k, reference=reference)
    results: dict[str, Any] = {}
    for name in names:
        if progress is not None:
            progress(name)
        result = ANALYSES.get(name).compute(ctx)
        save_result(run, name, result)
        if name == "archetypes" and (not embeddings_only or has_images(run)):
            _save_prototypes(run, result)  # (pictures need the images)
        if figures and ANALYSES.get(name).figure and not missing("matplotlib"):
            # (a core install has no matplotlib: results are kept, figures skipped)
            from thresher.report.diagnose_figures import save_figure

            save_figure(name, [(run.path.name, result)], run.file(f"{AREA}/{name}/figure.png"))
        results[name] = result
        # recorded per analysis, so a stopped diagnose keeps the ones that finished
        run.record_entries(
            AREA, {name: {"summary": result.summary(), "k": ctx.k, "top_k": ctx.top_k}}
        )
    return results


def _check_before_work(
    run: Run, names: Sequence[str], *, k: int, reference: int | str | None
) -> None:
    """Refuse a request that is bound to fail before anything is extracted or written."""
    from thresher.workflows.run import run_dataset

    needs_sizes = bool({"archetypes", "adversaries"} & set(names))
    if reference is None and not needs_sizes:
        return
    if is_embeddings_run(run):
        train: Any = embed_run(run)  # the stored embeddings: ids, labels, class names
        train_classes = tuple(run.config.get("classes", ()))
    else:
        train = run_dataset(run, "train")
        train_classes = tuple(train.classes)
    if reference is not None:
        check_reference(reference, train_classes)
    if needs_sizes and train.labels is not None:
        check_class_sizes(np.asarray(train.labels), train_classes, k=k)


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
    from thresher.workflows.run import run_dataset

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
