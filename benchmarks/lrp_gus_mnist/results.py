"""Collect the paper-scale LRP-GUS MNIST run into benchmarks/results/lrp_gus_mnist.json.

Reads only stored files of the run (the trace, the cutoff, the Table 4 evaluation); nothing is
typed by hand. Run by ``run.sh`` once the evaluation exists; safe to run again.
"""

from __future__ import annotations

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
RUN = RESULTS / "lrp_gus_mnist" / "run"
PAPER = {"compression": 0.9610, "acc_tc": 96.35, "acc_tcbal": 96.63, "acc_full": 99.24}
# the paper's Table 4 (seed 000): class counts of T_c and F1 (%) per class of T, T_c, T_c(bal)
PAPER_COUNTS = [185, 819, 173, 173, 162, 152, 162, 154, 180, 180]
PAPER_F1 = {
    "T": [99.55, 99.57, 99.17, 99.36, 99.41, 99.02, 99.23, 98.99, 99.09, 98.95],
    "T_c": [97.67, 98.50, 95.11, 95.49, 97.52, 95.93, 97.52, 95.32, 94.86, 95.36],
    "T_c(bal)": [97.75, 98.42, 95.57, 96.35, 97.65, 96.80, 97.65, 95.33, 95.03, 95.62],
}


def main() -> None:
    run = open_run(RUN)
    trace = load_trace(run)
    cut = load_reduction(run)
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
        "precision": run.read_json("reduce/state.json")["context"].get(
            "precision", recipe["precision"]
        ),
        "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} cpus",
        "paper": PAPER,
    }
    path = RESULTS / "lrp_gus_mnist.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    print()
    print(markdown(rows, out))


def markdown(rows: dict[str, dict], out: dict) -> str:
    """Table 4 of the paper beside this run's, for docs/lrp-gus-results.md."""

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
        f"| size | {t['size']:,} | {tc['size']:,} | {bal['size']:,} | 60,000 | 2,340 | 2,340 |",
        f"| r (of 60,000) | - | {100 * out['compression']:.2f}% | "
        f"{100 * out['compression']:.2f}% | - | 96.10% | 96.10% |",
        f"| accuracy | {cell(t, 'accuracy')} | {cell(tc, 'accuracy')} | "
        f"{cell(bal, 'accuracy')} | 99.24 | 96.35 | 96.63 |",
    ]
    for c in range(len(tc["f1_mean"])):
        paper = " | ".join(f"{PAPER_F1[k][c]:.2f}" for k in ("T", "T_c", "T_c(bal)"))
        lines.append(
            f"| F1 ({c}) | {cell(t, 'f1', c)} | {cell(tc, 'f1', c)} | {cell(bal, 'f1', c)} | "
            f"{paper} |"
        )
    counts = " | ".join(
        f"{a} ({100 * a / tc['size']:.1f}%) / {b}"
        for a, b in zip(tc["class_counts"], PAPER_COUNTS, strict=True)
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
    return {**diff.to_dict(), "iterations": int(ok.sum()), "guided_wins": int(
        (guided[ok] > balanced[ok]).sum())}  # fmt: skip


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
