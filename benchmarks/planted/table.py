"""Markdown tables of the planted-corruption benchmark's JSON results (for docs/filtering.md).

python benchmarks/planted/table.py benchmarks/results/planted_mnist.json [...]
"""

from __future__ import annotations

import json
import sys


def table(path: str) -> str:
    with open(path) as fh:
        res = json.load(fh)
    methods = ["thresher", "thesis", "cleanlab"]
    lines = [
        f"**{res['dataset']}** ({res['n_total']} images: {res['n_clean']} clean + planted; "
        f"{res['model']}, {res['epochs']} epochs"
        + (f", test accuracy {100 * res['test_accuracy']:.1f}%" if "test_accuracy" in res else "")
        + f"; {res['wall_seconds']:.0f} s)",
        "",
    ]
    for layer in dict.fromkeys(r["layer"] for r in res["scores"]):
        lines.append(f"Layer `{layer}` — recall at the planted share / average precision:")
        lines.append("")
        lines.append("| kind | planted | " + " | ".join(methods) + " |")
        lines.append("|---|---|" + "---|" * len(methods))
        rows = [r for r in res["scores"] if r["layer"] == layer]
        for kind in dict.fromkeys(r["kind"] for r in rows):
            cells = []
            n = next(r["n_planted"] for r in rows if r["kind"] == kind)
            for m in methods:
                hit = [r for r in rows if r["kind"] == kind and r["method"] == m]
                cells.append(
                    f"{hit[0]['recall_at_planted']:.2f} / {hit[0]['average_precision']:.2f}"
                    if hit
                    else "—"
                )
            lines.append(f"| {kind} | {n} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n".join(table(p) for p in sys.argv[1:]))
