"""Full-data accuracy at fp32 and at precision=auto, per seed, with the paired difference.

Reads the files ``benchmarks/precision_accuracy.sh`` writes (nothing typed by hand) and prints,
per data set: each seed's accuracy and training time in both precisions, the means and the
mean paired difference (auto - fp32) with a paired t confidence interval.

    python benchmarks/precision_table.py
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
from scipy import stats

RESULTS = Path(__file__).resolve().parent / "results"
NAME = re.compile(r"precision_(?P<data>.+)_(?P<prec>fp32|auto)(?:_s(?P<seed>\d+))?\.json$")


def main() -> None:
    table: dict[str, dict[int, dict[str, dict]]] = {}
    for path in sorted(RESULTS.glob("precision_*.json")):
        m = NAME.match(path.name)
        if not m:
            continue
        seed = int(m["seed"] or 0)
        table.setdefault(m["data"], {}).setdefault(seed, {})[m["prec"]] = json.loads(
            path.read_text()
        )
    for data, seeds in table.items():
        print(f"{data}: seed, fp32 %, auto %, fp32 s, auto s")
        pairs = []
        for seed in sorted(seeds):
            row = seeds[seed]
            if set(row) != {"fp32", "auto"}:
                continue
            a32, aau = 100 * row["fp32"]["test_accuracy"], 100 * row["auto"]["test_accuracy"]
            pairs.append((a32, aau))
            print(f"  {seed}  {a32:.2f}  {aau:.2f}  {row['fp32']['seconds']:.0f}  "
                  f"{row['auto']['seconds']:.0f}")  # fmt: skip
        if not pairs:
            continue
        arr = np.array(pairs)
        diff = arr[:, 1] - arr[:, 0]
        n = len(diff)
        line = (f"  mean fp32 {arr[:, 0].mean():.2f}, auto {arr[:, 1].mean():.2f}; "
                f"auto - fp32 = {diff.mean():+.2f} points over {n} seed(s)")  # fmt: skip
        if n > 1:
            half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / math.sqrt(n)
            p = stats.ttest_rel(arr[:, 1], arr[:, 0]).pvalue
            line += f", 95% CI [{diff.mean() - half:+.2f}, {diff.mean() + half:+.2f}], p = {p:.2f}"
        print(line)


if __name__ == "__main__":
    main()
