"""A run's LRP-GUS reduction as report sections (the app's Reduction view): the search's
summary and cutoff, Fig. 2a/2b drawn from the trace, and the trace as a readable table.

Works on a finished search and on one still running (the cutoff is then computed from the
iterations so far and says so).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from thresher.errors import RunError
from thresher.report.html import ReportSection
from thresher.store import Run

TRACE_ROWS = 500  # iterations listed; the figures show all


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{100 * float(x):.2f}"


def reduction_sections(run: Run) -> list[ReportSection]:
    """The reduction of ``run`` as sections; ``RunError`` when it has none."""
    from thresher.lrp_gus.cutoff import choose_cutoff
    from thresher.workflows.reduce import load_trace

    trace = load_trace(run)  # RunError names `thresher reduce RUN` when there is none
    if not trace.records:
        raise RunError(f"{run.path}'s reduction has no finished iteration yet")
    finished = run.exists("reduce/cutoff.json")
    reference = None
    if run.exists("reduce/reference.json"):
        reference = float(run.read_json("reduce/reference.json")["accuracy"])
    rule = "drop:0.03"
    if finished:
        rule = str(run.read_json("reduce/cutoff.json").get("cutoff", {}).get("rule", rule))
    cutoff = None
    if reference is not None or not rule.startswith("drop"):
        cutoff = choose_cutoff(trace, rule, reference_accuracy=reference)
    last = trace.records[-1]
    state = trace.stop_reason or "running"
    summary = [
        ["", "value"],
        ["iterations", str(len(trace.records))],
        ["state", "finished" if finished else f"in progress ({state})"],
        ["training set T (images)", str(sum(trace.class_sizes))],
        ["full-T accuracy % (reference)", _pct(reference) if reference is not None else "n/a"],
        ["last subset (images)", str(last.size)],
        ["last accuracy %", _pct(last.accuracy)],
    ]
    if cutoff is not None:
        summary += [
            [f"cutoff ({cutoff.rule})", f"iteration {cutoff.iteration}"],
            ["cutoff subset T_c (images)", str(cutoff.size)],
            ["compression r %", _pct(cutoff.compression)],
            ["T_c accuracy %", _pct(cutoff.accuracy)],
            ["accuracy line %", _pct(cutoff.threshold)],
            ["meets the rule", "yes" if cutoff.met else "no"],
        ]
    note = (
        "LRP-GUS (relevance-guided undersampling): each iteration trains on the subset, scores "
        "each class by its LRP relevance, and grows or shrinks one class; the cutoff is the last "
        "subset whose accuracy stays on or above the line."
    )
    if not finished:
        note += " The search is still running: the cutoff is of the iterations so far."
    sections = [
        ReportSection(
            id="search",
            heading="The search",
            paper="LRP-GUS",
            tables=(("summary", summary),),
            note=note,
        )
    ]
    sections.append(
        ReportSection(
            id="figures",
            heading="Accuracy against compression; F1 and class sizes per iteration",
            paper="Fig. 2",
            figures=_figures(trace, cutoff),
        )
    )
    names = list(trace.classes) or [str(c) for c in range(len(trace.class_sizes))]
    rows = [["iteration", "images", "r %", "accuracy %", "random balanced %", "action", "class"]]
    for rec in trace.records[:TRACE_ROWS]:
        chosen = names[rec.chosen] if 0 <= rec.chosen < len(names) else ""
        rows.append(
            [
                str(rec.iteration),
                str(rec.size),
                _pct(rec.compression),
                _pct(rec.accuracy),
                _pct(rec.baseline_accuracy),
                rec.action,
                chosen,
            ]
        )
    caption = "iterations" + (
        f" (first {TRACE_ROWS} of {len(trace.records)})" if len(trace.records) > TRACE_ROWS else ""
    )
    sections.append(ReportSection(id="trace", heading="Trace", paper="", tables=((caption, rows),)))
    return sections


def _figures(trace: Any, cutoff: Any) -> tuple[tuple[str, bytes], ...]:
    from thresher.optional import missing

    if missing("matplotlib"):
        return ()
    from thresher.report.lrp_figures import plot_accuracy_compression, plot_f1_and_counts

    with tempfile.TemporaryDirectory(prefix="thresher-fig-") as tmp:
        a = plot_accuracy_compression(trace, Path(tmp) / "a.png", cutoff=cutoff)
        b = plot_f1_and_counts(trace, Path(tmp) / "b.png", cutoff=cutoff)
        return (
            ("accuracy against compression rate (Fig. 2a)", a.read_bytes()),
            ("F1 and images per class per iteration (Fig. 2b)", b.read_bytes()),
        )
