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

from thresher.reduce.workflow import load_reduction, load_trace
from thresher.runs import open_run

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
        "search_wall_seconds": secs,
        "precision": recipe["precision"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.processor() or ''}",
        "paper": PAPER,
    }
    path = RESULTS / "lrp_gus_mnist.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
