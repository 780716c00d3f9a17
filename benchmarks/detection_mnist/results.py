"""Collect the detection comparison into benchmarks/results/detection_mnist.json, print its
table (markdown) and draw docs/figures/detection_mnist.png (issue 19).

Reads only what ``run.sh`` stored (the compare table and the run's training result). Safe to
run again.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from thresher.device import cpu_model

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = REPO / "benchmarks" / "results"


def main() -> None:
    table = json.loads((OUT / "detection_mnist" / "compare.json").read_text())
    trained = json.loads((OUT / "detection_mnist" / "train.json").read_text())
    cells = []
    for i, keep in enumerate(table["keeps"]):
        for j, method in enumerate(table["methods"]):
            cell = table["cells"][table["names"][i][j]]
            cells.append(
                {
                    "method": method,
                    "kept": keep,
                    "size": cell["size"],
                    "score": cell["score"],
                    "map50": cell["map50"],
                    "map50_95": cell["map50_95"],
                    "mean": table["mean"][i][j],
                    "std": table["std"][i][j],
                    "versus_random": cell.get("versus_random"),
                }
            )
    out = {
        "data": "mnist-detection (2,000 train / 500 test canvases, 64x64, 1-3 real digits each)",
        "model": trained["model"],
        "recipe": trained["recipe"],
        "epochs": trained["epochs"],
        "precision": trained["precision"],
        "run_model": {k: trained[k] for k in ("map50", "map50_95", "score", "seconds")},
        "seeds": table["seeds"],
        "full": table["full"],
        "cells": cells,
        "machine": f"{cpu_model()}, {platform.machine()}",
    }
    (OUT / "detection_mnist.json").write_text(json.dumps(out, indent=2) + "\n")
    methods, keeps = table["methods"], table["keeps"]
    print(f"full set: score {table['full']['mean']:.3f} ± {table['full']['std']:.3f}\n")
    print("| kept % | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for i, keep in enumerate(keeps):
        row = []
        for j, method in enumerate(methods):
            text = f"{table['mean'][i][j]:.3f} ± {table['std'][i][j]:.3f}"
            vr = table["cells"][table["names"][i][j]].get("versus_random")
            if vr and method != "random":
                text += f" ({vr['mean']:+.3f}, p={vr['p_value']:.2g})"
            row.append(text)
        print(f"| {100 * keep:g} | " + " | ".join(row) + " |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for j, method in enumerate(methods):
        ys = [table["mean"][i][j] for i in range(len(keeps))]
        es = [table["std"][i][j] for i in range(len(keeps))]
        ax.errorbar([100 * k for k in keeps], ys, yerr=es, marker="o", capsize=3, label=method)
    ax.axhline(table["full"]["mean"], color="grey", ls="--", label="full set")
    ax.set_xlabel("kept % of the training canvases")
    ax.set_ylabel("score = 0.1 mAP50 + 0.9 mAP50-95")
    ax.set_title(f"det_tiny on MNIST detection canvases, {table['seeds']} seeds")
    ax.invert_xaxis()
    ax.legend()
    fig.tight_layout()
    fig.savefig(REPO / "docs" / "figures" / "detection_mnist.png")


if __name__ == "__main__":
    main()
