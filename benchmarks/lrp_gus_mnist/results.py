"""Collect a paper-scale LRP-GUS run into benchmarks/results/lrp_gus_<dataset>.json.

``--dataset mnist`` (default; ``run.sh`` here) or ``fmnist`` (``../lrp_gus_fmnist/run.sh``).

Reads only stored files of the run (the trace, the cutoff, the Table 4 evaluation); nothing is
typed by hand. Run by ``run.sh`` once the evaluation exists; safe to run again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from thresher.device import cpu_model
from thresher.lrp_gus.search import SearchTrace
from thresher.store import Run
from thresher.workflows.reduce import load_reduction, load_trace
from thresher.workflows.run import open_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "results"
FIGURES = HERE.parent.parent / "docs" / "figures" / "lrp-gus"
# the paper's Tables 4 (MNIST) and 5 (Fashion-MNIST), seed 000: compression, accuracy (%),
# T_c's class counts and F1 (%) per class of T, T_c and T_c(bal)
PAPERS: dict[str, dict] = {
    "mnist": {
        "table": "Table 4",
        "compression": 0.9610,
        "acc_full": 99.24,
        "acc_tc": 96.35,
        "acc_tcbal": 96.63,
        "tc_size": 2340,
        "counts": [185, 819, 173, 173, 162, 152, 162, 154, 180, 180],
        "f1": {
            "T": [99.55, 99.57, 99.17, 99.36, 99.41, 99.02, 99.23, 98.99, 99.09, 98.95],
            "T_c": [97.67, 98.50, 95.11, 95.49, 97.52, 95.93, 97.52, 95.32, 94.86, 95.36],
            "T_c(bal)": [97.75, 98.42, 95.57, 96.35, 97.65, 96.80, 97.65, 95.33, 95.03, 95.62],
        },
    },
    "fmnist": {
        "table": "Table 5",
        "compression": 0.7594,
        "acc_full": 92.46,
        "acc_tc": 88.98,
        "acc_tcbal": 89.53,
        "tc_size": 14436,
        "counts": [1068, 1012, 1097, 967, 1130, 3205, 1130, 2685, 1130, 1012],
        "f1": {
            "T": [87.61, 99.02, 87.99, 93.02, 87.94, 98.55, 77.88, 96.82, 98.66, 97.10],
            "T_c": [83.22, 98.12, 82.19, 89.36, 81.46, 98.04, 69.55, 95.53, 97.18, 96.03],
            "T_c(bal)": [83.89, 98.33, 82.72, 90.00, 82.55, 97.50, 71.06, 95.46, 97.50, 96.26],
        },
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(PAPERS), default="mnist")
    key = ap.parse_args().dataset
    paper = PAPERS[key]
    run = open_run(RESULTS / f"lrp_gus_{key}" / "run")
    trace = load_trace(run)
    if not run.file("reduce/evaluation.json").is_file():
        # a run spanning sessions: what the search has found so far, for the next session
        status = _search_status(run, trace)
        _figures(key, run, trace)
        path = RESULTS / f"lrp_gus_{key}_search.json"
        path.write_text(json.dumps(status, indent=2) + "\n")
        print(json.dumps(status, indent=2))
        print()
        print(status_markdown(status, paper))
        return
    cut = load_reduction(run)
    _figures(key, run, trace)
    evaluation = run.read_json("reduce/evaluation.json")
    rows = {r["dataset"]: r for r in evaluation["rows"]}
    recipe = run.config["recipe"]
    s = trace.settings
    chosen = cut["chosen"]
    secs = float(np.nansum(trace.column("seconds")))
    out = {
        "p0": s.p0,
        "up": s.up,
        "down": s.down,
        "lim": s.lim,
        "nmax": s.iterations,
        "epochs": recipe["epochs"],
        "iterations_run": len(trace.records),
        "stop_reason": trace.stop_reason,
        "cutoff_iteration": chosen["iteration"],
        "cutoff_rule": chosen["rule"],
        "cutoff_chosen_on": cut["eval_on"],
        "class_counts": list(chosen["counts"]),
        "size": chosen["size"],
        "compression": 1.0 - chosen["size"] / rows["T"]["size"],
        "acc_full_mean": rows["T"]["accuracy_mean"],
        "acc_full_std": rows["T"]["accuracy_std"],
        "acc_tc_mean": rows["T_c"]["accuracy_mean"],
        "acc_tc_std": rows["T_c"]["accuracy_std"],
        "acc_tcbal_mean": rows["T_c(bal)"]["accuracy_mean"],
        "acc_tcbal_std": rows["T_c(bal)"]["accuracy_std"],
        "n_models": evaluation["seeds"],  # on T_c and on T_c(bal) each
        "n_models_full": evaluation.get("full_seeds", evaluation["seeds"]),  # on T
        "f1_full_mean": rows["T"]["f1_mean"],
        "f1_tc_mean": rows["T_c"]["f1_mean"],
        "f1_tcbal_mean": rows["T_c(bal)"]["f1_mean"],
        "versus_balanced": evaluation["cutoff_versus_balanced"],
        "trace_versus_balanced": _trace_versus_balanced(trace, chosen["iteration"]),
        "variants": _variants(run),
        "search_wall_seconds": secs,
        # the wall_seconds: the search plus the evaluation's trainings (T, T_c, T_c(bal))
        "evaluation_train_seconds": _evaluation_seconds(run),
        "wall_seconds": secs + _evaluation_seconds(run),
        "precision": run.read_json("reduce/state.json")["context"].get(
            "precision", recipe["precision"]
        ),
        "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cpus",
        "paper": {k: paper[k] for k in ("table", "compression", "acc_full", "acc_tc", "acc_tcbal")},
    }
    path = RESULTS / f"lrp_gus_{key}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print()
    print(markdown(rows, out, paper))


def _figures(key: str, run: Run, trace: SearchTrace) -> None:
    """Fig. 2 (a: accuracy against compression, b: F1 and counts) of the run into docs/: the
    search's own figures (with the cutoff) once it has finished, else drawn from the trace."""
    import shutil

    FIGURES.mkdir(parents=True, exist_ok=True)
    names = ("fig_accuracy_compression.png", "fig_f1_counts.png")
    if trace.stop_reason and all(run.file(f"reduce/{n}").is_file() for n in names):
        for n in names:
            shutil.copyfile(run.file(f"reduce/{n}"), FIGURES / f"{key}_paper_scale_{n[4:]}")
        return
    from thresher.report.lrp_figures import plot_accuracy_compression, plot_f1_and_counts

    plot_accuracy_compression(trace, FIGURES / f"{key}_paper_scale_accuracy_compression.png")
    plot_f1_and_counts(trace, FIGURES / f"{key}_paper_scale_f1_counts.png")


def _evaluation_seconds(run: Run) -> float:
    """Training seconds of every stored model of the drop cutoff's evaluation."""
    total = 0.0
    for name in ("reduce-T", "reduce-Tc", "reduce-Tc-bal"):
        for path in sorted(run.file(f"sweep/{name}").glob("seed-*.json")):
            total += float(sum(json.loads(path.read_text())["result"]["train_seconds"]))
    return total


def _search_status(run: Run, trace: SearchTrace) -> dict[str, object]:
    """The search so far (no evaluation yet): sizes, the cutoff line, guided against balanced."""
    reference = run.read_json("reduce/reference.json")["accuracy"]
    line = reference - 0.03  # the paper's drop:0.03 rule, on the validation split
    acc = trace.column("accuracy")
    last = trace.records[-1]
    below = np.flatnonzero(acc < line)
    return {
        "status": "search in progress" if not trace.stop_reason else "search finished",
        "stop_reason": trace.stop_reason,
        "iterations_run": len(trace.records),
        "size": [int(sum(trace.records[0].counts)), int(sum(last.counts))],
        "class_counts_last": list(last.counts),
        "reference_accuracy": reference,
        "cutoff_line": line,
        "first_iteration_below_line": int(below[0]) if below.size else None,
        "accuracy_last": float(acc[-1]),
        "balanced_accuracy_last": float(trace.column("baseline_accuracy")[-1]),
        "trace_versus_balanced": _trace_versus_balanced(trace, len(trace.records) - 1),
        "search_wall_seconds": float(np.nansum(trace.column("seconds"))),
        "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cpus",
    }


def status_markdown(status: dict, paper: dict) -> str:
    """The search's state as the two tables of docs/lrp-gus-results.md ("Where it stands" and
    guided against balanced by blocks), so a session refreshes the doc by pasting them."""
    size0, size1 = status["size"]
    total = 60_000  # both data sets' training splits; the paper's r is of them
    line = status["cutoff_line"]
    first = status["first_iteration_below_line"]
    crossed = "not crossed yet" if first is None else f"first crossed at iteration {first}"
    vs = status["trace_versus_balanced"]
    lines = [
        "| | value |",
        "|---|---|",
        f"| iterations run | {status['iterations_run']} (status: {status['status']}) |",
        f"| subset size | {size0:,} -> {size1:,} images (r = {100 * (1 - size1 / total):.2f}% of "
        f"the {total:,}; the paper's cutoff: {paper['tc_size']:,}, "
        f"r = {100 * paper['compression']:.2f}%) |",
        f"| class counts now | {status['class_counts_last']} |",
        f"| guided model now (validation) | {100 * status['accuracy_last']:.2f}% (its random "
        f"balanced twin: {100 * status['balanced_accuracy_last']:.2f}%) |",
        f"| cutoff line | reference {100 * status['reference_accuracy']:.2f}% - 3 = "
        f"{100 * line:.2f}%; {crossed} |",
        "",
        f"Over {vs['iterations']} iterations the guided model was ahead {vs['guided_wins']} "
        f"times; mean difference {100 * vs['mean']:+.2f} points "
        f"[{100 * vs['ci_low']:+.2f}, {100 * vs['ci_high']:+.2f}]; correlation with the largest "
        f"class's share r = {vs['corr_largest_class_share_difference']:.2f}; search wall time "
        f"{status['search_wall_seconds'] / 3600:.1f} h.",
        "",
        "| iterations | size | largest class share | guided - balanced (points) | guided ahead |",
        "|---|---|---|---|---|",
    ]
    for b in vs["blocks"]:
        lo, hi = b["iterations"]
        n = hi - lo + 1
        lines.append(
            f"| {lo}-{hi} | {b['size'][0]:,} -> {b['size'][1]:,} | "
            f"{100 * b['largest_class_share']:.1f}% | {100 * b['mean_difference']:+.2f} | "
            f"{b['guided_wins']} of {n} |"
        )
    return "\n".join(lines)


def markdown(rows: dict[str, dict], out: dict, paper: dict) -> str:
    """The paper's Table 4 or 5 beside this run's, for docs/lrp-gus-results.md."""

    def cell(row: dict, key: str, c: int | None = None) -> str:
        mean, std = row[f"{key}_mean"], row[f"{key}_std"]
        if c is not None:
            mean, std = mean[c], std[c]
        return f"{100 * mean:.2f} ± {100 * std:.2f}"

    t, tc, bal = rows["T"], rows["T_c"], rows["T_c(bal)"]
    n, n_full = out["n_models"], out["n_models_full"]
    lines = [
        f"| | T ({n_full} models) | T_c ({n}) | T_c(bal) ({n}) | paper T | paper T_c | "
        "paper T_c(bal) |",
        "|---|---|---|---|---|---|---|",
        f"| size | {t['size']:,} | {tc['size']:,} | {bal['size']:,} | 60,000 | "
        f"{paper['tc_size']:,} | {paper['tc_size']:,} |",
        f"| r (of 60,000) | - | {100 * out['compression']:.2f}% | "
        f"{100 * out['compression']:.2f}% | - | {100 * paper['compression']:.2f}% | "
        f"{100 * paper['compression']:.2f}% |",
        f"| accuracy | {cell(t, 'accuracy')} | {cell(tc, 'accuracy')} | "
        f"{cell(bal, 'accuracy')} | {paper['acc_full']:.2f} | {paper['acc_tc']:.2f} | "
        f"{paper['acc_tcbal']:.2f} |",
    ]
    for c in range(len(tc["f1_mean"])):
        theirs = " | ".join(f"{paper['f1'][k][c]:.2f}" for k in ("T", "T_c", "T_c(bal)"))
        lines.append(
            f"| F1 ({c}) | {cell(t, 'f1', c)} | {cell(tc, 'f1', c)} | {cell(bal, 'f1', c)} | "
            f"{theirs} |"
        )
    counts = " | ".join(
        f"{a} ({100 * a / tc['size']:.1f}%) / {b}"
        for a, b in zip(tc["class_counts"], paper["counts"], strict=True)
    )
    lines += ["", "T_c class counts, this run / paper:", "", counts]
    return "\n".join(lines)


def _trace_versus_balanced(trace: SearchTrace, cutoff: int) -> dict[str, object]:
    """Relevance-guided against the random balanced model of the same size, iteration by
    iteration up to the cutoff (one seed each, paired by iteration)."""
    from thresher.evaluate.paired import paired_difference

    guided = trace.column("accuracy")[: cutoff + 1]
    balanced = trace.column("baseline_accuracy")[: cutoff + 1]
    ok = np.isfinite(guided) & np.isfinite(balanced)
    diff = paired_difference(guided[ok], balanced[ok])
    # where the gap opens: blocks of 40 iterations, with the share of the largest class (the
    # guided subset's imbalance; its balanced twin has none)
    counts = np.array([r.counts for r in trace.records[: cutoff + 1]], dtype=float)
    top_share = counts.max(axis=1) / counts.sum(axis=1)
    gap = guided - balanced
    blocks = []
    for lo in range(0, cutoff + 1, 40):
        sl = slice(lo, min(lo + 40, cutoff + 1))
        keep = ok[sl]
        blocks.append(
            {
                "iterations": [lo, sl.stop - 1],
                "size": [int(counts[lo].sum()), int(counts[sl.stop - 1].sum())],
                "largest_class_share": float(top_share[sl].mean()),
                "mean_difference": float(gap[sl][keep].mean()),
                "guided_wins": int((gap[sl][keep] > 0).sum()),
            }
        )
    return {
        **diff.to_dict(),
        "iterations": int(ok.sum()),
        "guided_wins": int((guided[ok] > balanced[ok]).sum()),
        "corr_largest_class_share_difference": (
            float(np.corrcoef(top_share[ok], gap[ok])[0, 1]) if ok.sum() >= 3 else None
        ),
        "blocks": blocks,
    }


def _variants(run: Run) -> dict[str, object]:
    """Other cutoffs of the same trace, each against its own balanced twin (same T)."""
    out: dict[str, object] = {}
    path = run.file("reduce/evaluation-knee.json")
    if path.is_file():
        knee = json.loads(path.read_text())
        rows = {r["dataset"]: r for r in knee["rows"]}
        out["knee"] = {
            "size": rows["T_c"]["size"],
            "compression": 1.0 - rows["T_c"]["size"] / rows["T"]["size"],
            "acc_tc_mean": rows["T_c"]["accuracy_mean"],
            "acc_tcbal_mean": rows["T_c(bal)"]["accuracy_mean"],
            "versus_balanced": knee["cutoff_versus_balanced"],
        }
    return out


if __name__ == "__main__":
    main()
