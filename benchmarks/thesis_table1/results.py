"""Collect the Table 1 run into benchmarks/results/thesis_table1_cifar10.json (issue 16).

Reads only what the run stored (run.sh's compare table, or with ``--source evaluate`` the
per-cell evaluations that pairs.py and compare write, and the run's manifest); nothing is typed
by hand except the thesis's own table, for the side-by-side. Safe to run again.

    python benchmarks/thesis_table1/results.py    # the GPU run (benchmarks/gpu/table1.sh)
    python benchmarks/thesis_table1/results.py --dir benchmarks/results/thesis_table1 \
        --out benchmarks/results/thesis_table1_cifar10_cpu.json   # the CPU run (run.sh)
    python benchmarks/thesis_table1/results.py --dir benchmarks/results/thesis_table1 \
        --source evaluate --out benchmarks/results/thesis_table1_cifar10_cpu.json
        # the CPU run's cells so far (pairs.py), each paired with random over common seeds
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from pathlib import Path

import numpy as np

from thresher.device import cpu_model
from thresher.evaluate.paired import paired_difference

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results"
# The thesis's Table 1 (CIFAR-10, ResNet-32, mean test accuracy over 5 trials): the full set,
# and each method at 95, 90, 80 and 50% kept ("uniqueness" is its FiftyOne column).
THESIS_METHODS = ("random", "uniqueness", "similar", "outliers", "half")
THESIS_ROWS = {
    "95": (93.09, 92.93, 93.25, 93.05, 93.08),
    "90": (92.76, 93.20, 93.20, 93.17, 93.13),
    "80": (92.67, 92.92, 93.00, 89.30, 93.19),
    "50": (90.75, 91.06, 91.97, 59.43, 86.75),
}
THESIS = {
    "full": 93.12,
    **{keep: dict(zip(THESIS_METHODS, row, strict=True)) for keep, row in THESIS_ROWS.items()},
}


def machine(run_dir: Path, device: str) -> str:
    """Where the run's models trained: ``machine.txt`` beside the run when the script that
    trained them wrote one (benchmarks/gpu/table1.sh: the GPU's name, driver and torch), else
    this CPU's model (run.sh trains on the machine that collects)."""
    note = run_dir / "machine.txt"
    if note.is_file():
        return " ".join(note.read_text().split())
    if device.startswith("cuda"):
        return f"a CUDA GPU ({device})"
    return f"{cpu_model()}, {platform.machine()}"


def cells_from_compare(out_dir: Path) -> tuple[dict, list[dict]]:
    """The full set and every cell of the last finished ``thresher compare`` pass (run.sh)."""
    path = out_dir / "compare.json"
    if not path.is_file():
        raise SystemExit(
            f"{path} not found: run.sh has not finished a compare pass in {out_dir}; "
            "collect the cells pairs.py trained with --source evaluate"
        )
    table = json.loads(path.read_text())
    cells = []
    for i, keep in enumerate(table["keeps"]):
        for j, method in enumerate(table["methods"]):
            name = table["names"][i][j]
            cell = table["cells"][name]
            cells.append(
                {
                    "method": method,
                    "kept": keep,
                    "size": cell["size"],
                    "seeds": table["seeds"],
                    "accuracies": cell["accuracy"],
                    "mean": table["mean"][i][j],
                    "std": table["std"][i][j],
                    "versus_random": cell.get("versus_random"),
                }
            )
    return table["full"], cells


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _paired(rec: dict, base: dict | None) -> dict | None:
    """``rec``'s accuracies minus ``base``'s over the seeds both have (None without any)."""
    if base is None:
        return None
    acc = dict(zip(rec["seeds"], rec["accuracy"], strict=True))
    ref = dict(zip(base["seeds"], base["accuracy"], strict=True))
    common = sorted(set(acc) & set(ref))
    if not common:
        return None
    diff = paired_difference(
        np.array([acc[s] for s in common]), np.array([ref[s] for s in common])
    ).to_dict()
    out = {k: _finite(v) if isinstance(v, float) else v for k, v in diff.items()}
    out["seeds"] = common
    return out


def cells_from_evaluate(run_dir: Path) -> tuple[dict, list[dict]]:
    """Every cell the run has evaluated (``RUN/evaluate/<method>-keep<tag>.json``, as pairs.py
    and compare store them), each against random at the same kept share over the seeds both
    have: for a run whose cells have different numbers of seeds, or no full-set seeds yet
    beyond the run's model (a CPU session trains the pairs first)."""
    records = {
        p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "evaluate").glob("*.json"))
    }
    if "full" not in records:
        raise SystemExit(f"{run_dir}/evaluate/full.json not found: no full-set model evaluated")
    full = records.pop("full")
    cells = []
    for name, rec in records.items():
        method, sep, tag = name.rpartition("-keep")
        if not sep:
            continue  # another evaluation stored in the run (not a Table 1 cell)
        versus = None
        if method != "random":
            versus = _paired(rec, records.get(f"random-keep{tag}"))
        # pairs.py --matched: random with this method's class counts (None where not trained)
        versus_matched = _paired(rec, records.get(f"random_as_{method}-keep{tag}"))
        values = np.array(rec["accuracy"], dtype=np.float64)
        cells.append(
            {
                "method": method,
                "kept": rec["subset_size"] / rec["train_size"],
                "size": rec["subset_size"],
                "seeds": rec["seeds"],
                "accuracies": rec["accuracy"],
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                "versus_random": versus,
                "versus_random_same_class_counts": versus_matched,
                "train_seconds": rec.get("train_seconds"),
            }
        )
    cells.sort(key=lambda c: (-c["kept"], c["method"] != "random", c["method"]))
    values = np.array(full["accuracy"], dtype=np.float64)
    summary = {
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
        "seeds": full["seeds"],
        "accuracies": full["accuracy"],
    }
    return summary, cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=OUT / "thesis_table1_gpu", help="run.sh's TABLE1_DIR"
    )
    parser.add_argument("--out", type=Path, default=OUT / "thesis_table1_cifar10.json")
    parser.add_argument(
        "--source",
        choices=("compare", "evaluate"),
        default="compare",
        help="compare: run.sh's last compare pass (every cell, same seeds); evaluate: every "
        "cell the run evaluated, each paired with random over the seeds both have",
    )
    args = parser.parse_args()
    manifest = json.loads((args.dir / "run" / "manifest.json").read_text())
    if args.source == "compare":
        full, cells = cells_from_compare(args.dir)
    else:
        full, cells = cells_from_evaluate(args.dir / "run")
    out = {
        "full": full,
        "cells": cells,
        "model": manifest["config"]["model"]["name"],
        "recipe": manifest["config"]["recipe"],
        "precision": manifest["config"]["recipe"]["precision"],
        "device": manifest["steps"]["train"]["device"],
        "machine": machine(args.dir, manifest["steps"]["train"]["device"]),
        "thesis": THESIS,
    }
    path = args.out
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "cells"}, indent=2))
    for c in cells:
        vr = c["versus_random"]
        diff = ""
        if vr:
            p = "n/a, 1 seed" if vr["p_value"] is None else f"{vr['p_value']:.2g}"
            diff = f"  {100 * vr['mean']:+.2f} (p={p})"
        vm = c.get("versus_random_same_class_counts")
        if vm:
            p = "n/a, 1 seed" if vm["p_value"] is None else f"{vm['p_value']:.2g}"
            diff += f"  vs random_as: {100 * vm['mean']:+.2f} (p={p})"
        print(
            f"{c['kept']:.2f} {c['method']:<11} {100 * c['mean']:.2f} ± {100 * c['std']:.2f}{diff}"
        )


if __name__ == "__main__":
    main()
