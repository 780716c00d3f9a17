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
        "n_models": evaluation["seeds"],
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
