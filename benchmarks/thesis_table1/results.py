"""Collect the Table 1 run into benchmarks/results/thesis_table1_cifar10.json (issue 16).

Reads only what ``run.sh`` stored (the compare table and the run's manifest); nothing is typed
by hand except the thesis's own row, for the side-by-side. Safe to run again.

    python benchmarks/thesis_table1/results.py    # the GPU run (benchmarks/gpu/table1.sh)
    python benchmarks/thesis_table1/results.py --dir benchmarks/results/thesis_table1 \
        --out benchmarks/results/thesis_table1_cifar10_cpu.json   # the CPU run (run.sh)
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from thresher.device import cpu_model

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=OUT / "thesis_table1_gpu", help="run.sh's TABLE1_DIR"
    )
    parser.add_argument("--out", type=Path, default=OUT / "thesis_table1_cifar10.json")
    args = parser.parse_args()
    table = json.loads((args.dir / "compare.json").read_text())
    manifest = json.loads((args.dir / "run" / "manifest.json").read_text())
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
    out = {
        "full": table["full"],
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
        diff = "" if not vr else f"  {100 * vr['mean']:+.2f} (p={vr['p_value']:.2g})"
        print(
            f"{c['kept']:.2f} {c['method']:<11} {100 * c['mean']:.2f} ± {100 * c['std']:.2f}{diff}"
        )


if __name__ == "__main__":
    main()
