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


def finished_table() -> dict:
    """The comparison table of the cells finished so far (``RUN/compare/<cell>.json``), in the
    shape of ``thresher compare --json``, for a run that has not finished every cell yet."""
    import math
    import re

    from thresher.evaluate.paired import paired_difference

    folder = OUT / "detection_mnist" / "run" / "compare"
    found = {
        p.stem: json.loads(p.read_text())["result"]
        for p in folder.glob("*.json")
        if p.stem != "table"  # the whole table, written once every cell has finished
    }
    full = found.pop("full")
    pattern = re.compile(r"^(?P<method>[a-z0-9_]+)-keep(?P<keep>[0-9.]+)$")
    cells = {name: pattern.match(name) for name in found}
    methods = sorted({m["method"] for m in cells.values() if m}, key=lambda x: (x != "random", x))
    keeps = sorted({float(m["keep"]) / 100 for m in cells.values() if m}, reverse=True)
    names = [[f"{m}-keep{100 * k:g}" for m in methods] for k in keeps]
    mean = [[found[n]["score_mean"] if n in found else math.nan for n in row] for row in names]
    std = [[found[n]["score_std"] if n in found else math.nan for n in row] for row in names]
    out_cells = {}
    for row in names:
        base = next((found[n] for n in row if n.startswith("random-") and n in found), None)
        for n in row:
            if n not in found:
                continue
            cell = {k: found[n][k] for k in ("score", "map50", "map50_95")}
            cell["size"] = found[n]["subset_size"]
            if base is not None and not n.startswith("random-"):
                cell["versus_random"] = paired_difference(
                    found[n]["score"], base["score"]
                ).to_dict()
            out_cells[n] = cell
    return {
        "keeps": keeps, "methods": methods, "names": names, "mean": mean, "std": std,
        "full": {"mean": full["score_mean"], "std": full["score_std"]},
        "seeds": len(full["score"]), "cells": out_cells, "metric": "score", "partial": True,
    }  # fmt: skip


def seed_scores(cell: str) -> dict[int, float]:
    """Every finished seed's score of one cell, read from the per-seed store
    (``RUN/sweep/<cell>/seed-<s>.json``): a cell may hold more seeds than the table's run asked
    for (``SEEDS=5 KEEP=90 run.sh`` adds seeds 3 and 4 to the 90% row)."""
    folder = OUT / "detection_mnist" / "run" / "sweep" / cell
    return {
        int(p.stem.removeprefix("seed-")): json.loads(p.read_text())["result"]["score"]
        for p in sorted(folder.glob("seed-*.json"))
    }


def more_seeds(table: dict) -> list[dict]:
    """The cells with more seeds than the table, each against random on the seeds both have."""
    import numpy as np

    from thresher.evaluate.paired import paired_difference

    rows = []
    for i, keep in enumerate(table["keeps"]):
        random_name = next(n for n in table["names"][i] if n.startswith("random-"))
        base = seed_scores(random_name)
        for name in table["names"][i]:
            scores = seed_scores(name)
            seeds = sorted(set(scores) & set(base))
            if len(seeds) <= table["seeds"]:
                continue
            row = {
                "cell": name,
                "kept": keep,
                "seeds": seeds,
                "score": [scores[s] for s in seeds],
                "mean": float(np.mean([scores[s] for s in seeds])),
                "std": float(np.std([scores[s] for s in seeds], ddof=1)),
            }
            if name != random_name:
                row["versus_random"] = paired_difference(
                    np.array(row["score"]), np.array([base[s] for s in seeds])
                ).to_dict()
            rows.append(row)
    return rows


def pooled(table: dict) -> list[dict]:
    """Each method against random over every kept share at once: the per-seed differences of
    all rows in one paired test (every model is a separate training, so the pairs are
    independent; the test asks whether the method beats random on average over the shares)."""
    import numpy as np

    from thresher.evaluate.paired import paired_difference

    rows = []
    for j, method in enumerate(table["methods"]):
        if method == "random":
            continue
        mine, base = [], []
        for i in range(len(table["keeps"])):
            name = table["names"][i][j]
            random_name = next(n for n in table["names"][i] if n.startswith("random-"))
            if name in table["cells"] and random_name in table["cells"]:
                mine += table["cells"][name]["score"]
                base += table["cells"][random_name]["score"]
        if mine:
            diff = paired_difference(np.array(mine), np.array(base))
            ahead = int(np.sum(np.array(mine) > np.array(base)))
            rows.append({"method": method, "pairs": len(mine), "ahead": ahead, **diff.to_dict()})
    return rows


def main() -> None:
    path = OUT / "detection_mnist" / "compare.json"
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):  # the comparison has not finished every cell yet
        table = finished_table()
    trained = json.loads((OUT / "detection_mnist" / "train.json").read_text())
    cells = []
    for i, keep in enumerate(table["keeps"]):
        for j, method in enumerate(table["methods"]):
            if table["names"][i][j] not in table["cells"]:
                continue  # not finished yet
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
        "finished": not table.get("partial", False),
        "full": table["full"],
        "cells": cells,
        "machine": f"{cpu_model()}, {platform.machine()}",
        "more_seeds": more_seeds(table),
        "pooled_versus_random": pooled(table),
    }
    (OUT / "detection_mnist.json").write_text(json.dumps(out, indent=2) + "\n")
    methods, keeps = table["methods"], table["keeps"]
    print(f"full set: score {table['full']['mean']:.3f} ± {table['full']['std']:.3f}\n")
    print("| kept % | " + " | ".join(methods) + " |")
    print("|---" * (len(methods) + 1) + "|")
    for i, keep in enumerate(keeps):
        row = []
        for j, method in enumerate(methods):
            if table["names"][i][j] not in table["cells"]:
                row.append("(running)")
                continue
            text = f"{table['mean'][i][j]:.3f} ± {table['std'][i][j]:.3f}"
            vr = table["cells"][table["names"][i][j]].get("versus_random")
            if vr and method != "random":
                text += f" ({vr['mean']:+.3f}, p={vr['p_value']:.2g})"
            row.append(text)
        print(f"| {100 * keep:g} | " + " | ".join(row) + " |")
    print("\neach method against random over every kept share (paired by seed and share):\n")
    print("| method | pairs | ahead of random | mean difference [95% CI] | p |")
    print("|---|---|---|---|---|")
    for row in out["pooled_versus_random"]:
        print(
            f"| {row['method']} | {row['pairs']} | {row['ahead']} | {row['mean']:+.3f} "
            f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] | {row['p_value']:.2g} |"
        )
    if out["more_seeds"]:
        print("\ncells with more seeds (paired with random on the seeds both have):\n")
        print("| cell | seeds | mean ± std | versus random (mean, 95% CI, p) |")
        print("|---|---|---|---|")
        for row in out["more_seeds"]:
            vr = row.get("versus_random")
            text = (
                f"{vr['mean']:+.3f} [{vr['ci_low']:+.3f}, {vr['ci_high']:+.3f}], p={vr['p_value']:.2g}"
                if vr
                else ""
            )
            print(
                f"| {row['cell']} | {len(row['seeds'])} | {row['mean']:.3f} ± {row['std']:.3f}"
                f" | {text} |"
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for j, method in enumerate(methods):
        done = [i for i in range(len(keeps)) if table["names"][i][j] in table["cells"]]
        ys = [table["mean"][i][j] for i in done]
        es = [table["std"][i][j] for i in done]
        xs = [100 * keeps[i] for i in done]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
    draws = OUT / "detection_mnist_random_draws.json"  # random_draws.py, when it has run
    if draws.is_file():
        rows = json.loads(draws.read_text())["rows"]
        ax.scatter([100 * r["kept"] for r in rows], [r["score"] for r in rows], marker="x",
                   color="tab:blue", alpha=0.6, label="random, draws 0-3 (model seed 0)")  # fmt: skip
    ax.axhline(table["full"]["mean"], color="grey", ls="--", label="full set")
    ax.set_xlabel("kept % of the training canvases")
    ax.set_ylabel("score = 0.1 mAP50 + 0.9 mAP50-95")
    state = "" if not table.get("partial") else " (cells finished so far)"
    ax.set_title(f"det_tiny on MNIST detection canvases, {table['seeds']} seeds{state}")
    ax.invert_xaxis()
    ax.legend()
    fig.tight_layout()
    fig.savefig(REPO / "docs" / "figures" / "detection_mnist.png")


if __name__ == "__main__":
    main()
