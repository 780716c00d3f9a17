"""The ``reduce`` step (LRP-GUS): ``reduce_run`` and ``evaluate_cutoff`` over a run directory.

Everything goes under ``RUN/reduce/``: ``trace.parquet`` and ``state.json`` (the checkpoint,
rewritten after each iteration), ``reference.json`` (the full-T model's accuracy on the same
evaluation split), ``cutoff.json`` (both cutoffs, the chosen one's ids) and ``cutoff_ids.txt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from thresher.errors import ConfigError, RunError
from thresher.explain import LRPSettings
from thresher.lrp_gus.cutoff import Cutoff, choose_cutoff, parse_rule
from thresher.lrp_gus.search import (
    IterationRecord,
    SearchSettings,
    SearchTrace,
    balanced_positions,
    check_inputs,
    class_orders,
    run_search,
    subset_positions,
)
from thresher.lrp_gus.trace import DirCheckpoint
from thresher.store import Run, write_ids

AREA = "reduce"


EvalOn = Literal["validation", "test"]


@dataclass(frozen=True)
class ReduceSettings:
    """One reduction request.

    Attributes:
        search: the Table 1 parameters.
        cutoff: ``"drop:0.03"`` (the paper's rule) or ``"knee"``.
        eval_on: ``"validation"`` (held out of T; default) or ``"test"`` (the paper's choice,
            which lets the test set pick the subset; its accuracies are then not held out).
        val_fraction: share of each class of the training split held out for validation.
        epochs: override the run recipe's epochs for the search's models.
        lrp: how relevance is computed.
        precision: override the run recipe's precision for the search's models (auto, fp32,
            bf16, fp16); ``None`` = the recipe's.
        stop_after_cutoff: end the search this many iterations after the first one below the
            ``drop`` rule's accuracy line (the iterations after it cannot change ``T_c``);
            ``None`` = run to ``Nmax``. Needs the ``drop`` cutoff.
    """

    search: SearchSettings = field(default_factory=SearchSettings)
    cutoff: str = "drop:0.03"
    eval_on: EvalOn = "validation"
    val_fraction: float = 0.1
    epochs: int | None = None
    lrp: LRPSettings = field(default_factory=LRPSettings)
    precision: str | None = None
    stop_after_cutoff: int | None = None

    def __post_init__(self) -> None:
        parse_rule(self.cutoff)
        if self.stop_after_cutoff is not None:
            k = self.stop_after_cutoff
            if isinstance(k, bool) or not isinstance(k, int) or k < 0:
                raise ConfigError(f"--stop-after-cutoff must be an integer >= 0, got {k!r}")
            if not self.cutoff.startswith("drop"):
                raise ConfigError(
                    "--stop-after-cutoff needs the drop cutoff (the knee depends on the whole "
                    "trace); use --cutoff drop:0.03 or leave --stop-after-cutoff out"
                )
        if self.eval_on not in ("validation", "test"):
            raise ConfigError(f"eval_on must be 'validation' or 'test', got {self.eval_on!r}")
        if self.eval_on == "validation" and not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")

    def context(self) -> dict[str, Any]:
        """What besides the search settings decides the trace (checked on resume)."""
        return {
            "eval_on": self.eval_on,
            "val_fraction": self.val_fraction if self.eval_on == "validation" else None,
            "epochs": self.epochs,
            "lrp": asdict(self.lrp),
            # only when set, so traces written before the option existed still resume
            **({"precision": self.precision} if self.precision is not None else {}),
        }


@dataclass(frozen=True)
class ReduceResult:
    """A finished (or stopped) search with its cutoffs."""

    trace: SearchTrace
    reference_accuracy: float
    cutoff: Cutoff
    cutoffs: dict[str, Cutoff]
    cutoff_ids: tuple[str, ...]
    run_dir: str
    seconds: float  # this call's wall time (a resumed search counts only what it added)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "iterations": len(self.trace.records),
            "stop_reason": self.trace.stop_reason,
            "reference_accuracy": self.reference_accuracy,
            "cutoff": self.cutoff.to_dict(),
            "cutoffs": {k: v.to_dict() for k, v in self.cutoffs.items()},
            "class_sizes": list(self.trace.class_sizes),
            "classes": list(self.trace.classes),
            "settings": self.trace.settings.to_dict(),
            "seconds": self.seconds,
            # every iteration's time, across resumed sessions ("seconds" is this call's)
            "search_seconds": float(sum(r.seconds for r in self.trace.records)),
        }

    def summary(self) -> str:
        c = self.cutoff
        text = (
            f"{len(self.trace.records)} iterations ({self.trace.stop_reason}); cutoff {c.rule} "
            f"at iteration {c.iteration}: {c.size} images, r = {100 * c.compression:.2f}%, "
            f"accuracy {100 * c.accuracy:.2f}% (full T {100 * self.reference_accuracy:.2f}%)"
        )
        if not c.met:
            text += (
                "; no iteration met the rule (even the first subset is below the line): "
                "start from a larger --p0 or use --cutoff knee"
            )
        return text


def search_pool(run: Run, settings: ReduceSettings) -> tuple[Any, Any, np.ndarray]:
    """``(T, evaluation split, positions of T in the run's training split)``."""
    from thresher.data.subset import stratified_split
    from thresher.workflows.run import run_dataset

    train = run_dataset(run, "train")
    labels = train.require_labels("the search")
    if settings.eval_on == "test":
        return train, run_dataset(run, "test"), np.arange(len(train), dtype=np.int64)
    pool, val = stratified_split(
        labels, test_fraction=settings.val_fraction, seed=settings.search.seed
    )
    return (
        train.take(pool, name=f"{train.name}[T]"),
        train.take(val, name=f"{train.name}[validation]"),
        pool,
    )


def reduce_run(
    run: Run,
    settings: ReduceSettings,
    *,
    resume: bool = False,
    restart: bool = False,
    device: str | None = None,
    progress: Callable[[IterationRecord], None] | None = None,
    scorer: Any = None,
) -> ReduceResult:
    """Run the LRP-GUS search on the run's training split with the run's model and recipe.

    ``resume`` continues a stored search (same settings; a larger ``iterations`` extends a
    finished one); ``restart`` discards it. ``scorer`` replaces the real one (tests).
    """
    from thresher.lrp_gus.scorer import TrainScorer
    from thresher.workflows.evaluate_detection import require_classifier
    from thresher.workflows.run import run_recipe, run_transform

    require_classifier(run, "thresher reduce (LRP-GUS)")
    start = time.perf_counter()
    directory = run.file(AREA)
    checkpoint = DirCheckpoint(directory, settings=settings.search, context=settings.context())
    if checkpoint.exists and not (resume or restart):
        raise RunError(
            f"{run.path} already holds a reduction ({directory}); pass --resume to continue it "
            "or --restart to discard it"
        )
    train, evaluation, _ = search_pool(run, settings)
    labels = train.require_labels("the search")
    # validate before discarding anything or the (long) reference training
    check_inputs(labels, train.num_classes, settings.search, train.classes)
    recipe = run_recipe(
        run,
        epochs=settings.epochs,
        precision=settings.precision,
        device=device,
        check_device=scorer is None,  # a precision this machine cannot train in, refused here
    )
    if restart:
        for name in ("state.json", "trace.parquet", "reference.json", "cutoff.json"):
            (directory / name).unlink(missing_ok=True)
    cfg = run.config
    if scorer is None:
        scorer = TrainScorer(
            train,
            evaluation,
            model=cfg["model"]["name"],
            recipe=recipe,
            transform=run_transform(run),
            lrp=settings.lrp,
            device=device,
        )
    reference = _reference_accuracy(run, settings, scorer, len(train))
    trace = run_search(
        labels,
        num_classes=train.num_classes,
        settings=settings.search,
        scorer=scorer,
        checkpoint=checkpoint,
        classes=train.classes,
        progress=progress,
        stop=_stop_rule(settings, reference),
    )
    cutoffs = {
        "drop": choose_cutoff(
            trace,
            settings.cutoff if settings.cutoff.startswith("drop") else "drop:0.03",
            reference_accuracy=reference,
        ),
        "knee": choose_cutoff(trace, "knee"),
    }
    chosen = cutoffs["knee" if settings.cutoff == "knee" else "drop"]
    orders = class_orders(labels, train.num_classes, seed=settings.search.seed)
    positions = subset_positions(
        labels,
        np.asarray(chosen.counts),
        settings=settings.search,
        iteration=chosen.iteration,
        orders=orders,
    )
    ids = tuple(str(i) for i in train.ids[positions])
    run.write_json(
        f"{AREA}/cutoff.json",
        {
            "rule": chosen.rule,
            "chosen": chosen.to_dict(),
            "cutoffs": {k: v.to_dict() for k, v in cutoffs.items()},
            "eval_on": settings.eval_on,
            "ids": list(ids),
            "pool_size": len(train),
        },
    )
    write_ids(list(ids), run.file(f"{AREA}/cutoff_ids.txt"))
    result = ReduceResult(
        trace=trace,
        reference_accuracy=reference,
        cutoff=chosen,
        cutoffs=cutoffs,
        cutoff_ids=ids,
        run_dir=str(run.path),
        seconds=time.perf_counter() - start,
    )
    info = {k: v for k, v in result.to_dict().items() if k not in ("cutoffs",)}
    info["context"] = settings.context()
    run.record_step(AREA, info)
    return result


def _stop_rule(
    settings: ReduceSettings, reference: float
) -> Callable[[Sequence[IterationRecord]], bool] | None:
    """``--stop-after-cutoff K``: stop once K iterations have run after the first one below
    the drop rule's line (``reference - drop``), which fixes ``i_c`` for good."""
    patience = settings.stop_after_cutoff
    if patience is None:
        return None
    threshold = reference - parse_rule(settings.cutoff)[1]

    def stop(records: Sequence[IterationRecord]) -> bool:
        below = [i for i, r in enumerate(records) if r.accuracy < threshold]
        return bool(below) and len(records) - 1 - below[0] >= patience

    return stop


def _reference_accuracy(run: Run, settings: ReduceSettings, scorer: Any, size: int) -> float:
    """The full-T model's accuracy on the evaluation split (trained once, then reused)."""
    rel = f"{AREA}/reference.json"
    key = {"context": settings.context(), "seed": settings.search.seed, "size": size}
    if run.exists(rel):
        stored = run.read_json(rel)
        if stored.get("key") == key:
            return float(stored["accuracy"])
    score = scorer(np.arange(size, dtype=np.int64), seed=settings.search.seed, relevance=False)
    run.write_json(rel, {"key": key, "accuracy": float(score.accuracy), "f1": list(score.f1)})
    return float(score.accuracy)


def load_reduction(run: Run) -> dict[str, Any]:
    """The stored ``cutoff.json`` of a run's reduction."""
    if not run.exists(f"{AREA}/cutoff.json"):
        raise RunError(f"{run.path} has no reduction; run `thresher reduce {run.path}` first")
    return dict(run.read_json(f"{AREA}/cutoff.json"))


def load_trace(run: Run) -> SearchTrace:
    """The stored trace of a run's reduction, finished or not (for figures and reports)."""
    from thresher.lrp_gus.trace import STATE, TRACE, read_trace

    directory = run.file(AREA)
    if not (directory / STATE).is_file():
        raise RunError(f"{run.path} has no reduction; run `thresher reduce {run.path}` first")
    stored = run.read_json(f"{AREA}/{STATE}")
    settings = _stored_settings(run)
    records = read_trace(directory / TRACE)[: int(stored["state"]["next_iteration"])]
    sizes = run.step(AREA).get("class_sizes")
    if not sizes:
        t_pool, _, _ = search_pool(run, settings)
        sizes = t_pool.class_counts().tolist()
    return SearchTrace(
        settings=settings.search,
        class_sizes=tuple(int(v) for v in sizes),
        records=tuple(records),
        stop_reason=str(stored["state"]["stop_reason"]),
        classes=tuple(run.config.get("classes", ())),
    )


# --- Tables 4 and 5 ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CutoffEvaluation:
    """``n`` models each on T, T_c and T_c(bal), tested on the run's test split."""

    full: Any  # EvaluationResult
    cutoff: Any
    balanced: Any
    rule: str

    def rows(self) -> list[dict[str, Any]]:
        """One row per data set: name, size, compression, accuracy and per-class F1 (mean, std)."""
        out = []
        for name, res in (("T", self.full), ("T_c", self.cutoff), ("T_c(bal)", self.balanced)):
            out.append(
                {
                    "dataset": name,
                    "size": res.subset_size,
                    "compression": res.compression,
                    "accuracy_mean": res.accuracy_mean,
                    "accuracy_std": res.accuracy_std,
                    "f1_mean": res.f1_mean.tolist(),
                    "f1_std": res.f1_std.tolist(),
                    "class_counts": res.subset_class_counts.tolist(),
                }
            )
        return out

    def cutoff_versus_balanced(self) -> Any:
        """T_c against T_c(bal), paired by seed: does relevance guidance beat chance?"""
        from thresher.evaluate.paired import paired_difference

        return paired_difference(self.cutoff.accuracy, self.balanced.accuracy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "seeds": self.cutoff.n,
            "full_seeds": self.full.n,
            "classes": list(self.full.classes),
            "rows": self.rows(),
            "cutoff_versus_balanced": self.cutoff_versus_balanced().to_dict(),
        }


def evaluate_cutoff(
    run: Run,
    *,
    seeds: int = 20,
    full_seeds: int | None = None,
    epochs: int | None = None,
    device: str | None = None,
    balanced_seed: int = 0,
    precision: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    rule: str | None = None,
) -> CutoffEvaluation:
    """Tables 4/5: retrain ``seeds`` models on T (the whole training split), T_c (the stored
    cutoff subset) and T_c(bal) (a seeded random balanced subset of T_c's size drawn from the
    search's T); test each on the test split. Stored under ``RUN/evaluate/reduce-*.json``.
    ``engine="ray"`` trains the seeds as parallel Ray tasks; ``precision`` overrides the run
    recipe's. ``rule`` (``"drop"`` or ``"knee"``) evaluates that cutoff of the stored trace
    instead of the chosen one (same T models, which are cached per seed). ``full_seeds``
    (default ``seeds``) trains fewer models on T, by far the largest set, where time forces it:
    T is the drop's reference, while T_c against T_c(bal) (the paired question) keeps ``seeds``.
    """
    from thresher.workflows.evaluate import evaluate_run

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    if full_seeds is not None and full_seeds < 1:
        raise ConfigError(f"--full-seeds must be >= 1, got {full_seeds}")
    if rule not in (None, "drop", "knee"):
        raise ConfigError(f"the cutoff rule must be 'drop' or 'knee', got {rule!r}")

    stored = load_reduction(run)
    pool_settings = _stored_settings(run)
    t_pool, _, _ = search_pool(run, pool_settings)
    pool_labels = t_pool.require_labels("evaluation")
    chosen_family = str(stored["rule"]).partition(":")[0]
    if rule is None or rule == chosen_family:
        ids = np.asarray(stored["ids"], dtype=str)
        cutoff_rule, suffix = str(stored["rule"]), ""
    else:
        other = stored["cutoffs"][rule]
        orders = class_orders(pool_labels, t_pool.num_classes, seed=pool_settings.search.seed)
        positions = subset_positions(
            pool_labels,
            np.asarray(other["counts"]),
            settings=pool_settings.search,
            iteration=int(other["iteration"]),
            orders=orders,
        )
        ids = t_pool.ids[positions]
        cutoff_rule, suffix = str(other["rule"]), f"-{rule}"
    bal = balanced_positions(pool_labels, len(ids), seed=balanced_seed)
    bal_ids = t_pool.ids[bal]
    common: dict[str, Any] = {
        "seeds": seeds,
        "epochs": epochs,
        "device": device,
        "precision": precision,
        "engine": engine,
        "ray_address": ray_address,
    }
    # the small subsets first: their table is the paper's question; T (large) resumes per seed
    cut = evaluate_run(run, subset_ids=ids, name=f"reduce-Tc{suffix}", **common)
    balanced = evaluate_run(run, subset_ids=bal_ids, name=f"reduce-Tc{suffix}-bal", **common)
    common["seeds"] = seeds if full_seeds is None else full_seeds
    full = evaluate_run(run, subset_ids=None, name="reduce-T", **common)
    result = CutoffEvaluation(full=full, cutoff=cut, balanced=balanced, rule=cutoff_rule)
    run.write_json(f"{AREA}/evaluation{suffix}.json", result.to_dict())
    return result


def _stored_settings(run: Run) -> ReduceSettings:
    ctx = run.step(AREA).get("context")
    stored = run.read_json(f"{AREA}/state.json")
    s = dict(stored["settings"])
    s["p0"] = s["p0"] if isinstance(s["p0"], int) else tuple(s["p0"])
    ctx = ctx or stored.get("context", {})
    return ReduceSettings(
        search=SearchSettings(**s),
        eval_on=ctx.get("eval_on", "validation"),
        val_fraction=ctx.get("val_fraction") or 0.1,
        epochs=ctx.get("epochs"),
        lrp=LRPSettings(**ctx.get("lrp", {})),
        precision=ctx.get("precision"),
    )


def format_cutoff_table(result: CutoffEvaluation) -> list[list[str]]:
    """Rows of strings like Tables 4b/5b: header, r, accuracy, F1 per class (mean ± std, %)."""
    rows = [["", "T", "T_c", "T_c(bal)"]]
    data = result.rows()
    rows.append(["r", "-", *[f"{100 * d['compression']:.2f}" for d in data[1:]]])
    rows.append(
        [
            "accuracy",
            *[f"{100 * d['accuracy_mean']:.2f} ± {100 * d['accuracy_std']:.2f}" for d in data],
        ]
    )
    for c, name in enumerate(result.full.classes):
        rows.append(
            [
                f"F1 ({name})",
                *[f"{100 * d['f1_mean'][c]:.2f} ± {100 * d['f1_std'][c]:.2f}" for d in data],
            ]
        )
    rows.append(["T_c - T_c(bal)", "", result.cutoff_versus_balanced().summary(), ""])
    return rows
