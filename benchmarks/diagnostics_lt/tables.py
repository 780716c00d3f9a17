"""Markdown tables for docs/diagnostics-results-cpu.md, read from stored run results.

Usage: python tables.py LABEL=RUN [LABEL=RUN ...]
"""

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from thresher.diagnose import ARCHETYPES, COLOUR_BINS
from thresher.workflows.diagnose import load_result
from thresher.workflows.run import open_run

PAPER = {"nnb": 0.5561, "fdr": 0.5157, "random": 4.535, "random_over_nnb": 8.155}

models = [(a.split("=", 1)[0], a.split("=", 1)[1]) for a in sys.argv[1:]]
runs = [(label, open_run(path), path) for label, path in models]
res = {
    label: {
        n: load_result(run, n)
        for n in ("accuracy", "archetypes", "adversaries", "top_features", "density", "colours")
    }
    for label, run, _ in runs
}
labels = [m[0] for m in models]


def md(rows):
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


print("### Runs\n")
rows = [
    [
        "model",
        "train items",
        "epochs",
        "recipe",
        "loss",
        "DRW from epoch",
        "train s",
        "test accuracy",
        "balanced acc.",
    ]
]
for label, _run, path in runs:
    man = json.loads(Path(f"{path}/manifest.json").read_text())
    rec = man["config"]["recipe"]
    hist = pq.read_table(f"{path}/train_history.parquet").to_pydict()
    acc = res[label]["accuracy"]
    test = json.loads(Path(f"{path}/test_metrics.json").read_text())
    rows.append(
        [
            label,
            str(int(np.sum(acc.train_counts))),
            str(rec["epochs"]),
            rec["name"],
            rec["loss"],
            str(rec["drw_epoch"]),
            f"{sum(hist['seconds']):.0f}",
            f"{100 * test['accuracy']:.2f}%",
            f"{100 * acc.summary()['balanced_accuracy']:.2f}%",
        ]
    )
print(md(rows) + "\n")

print("### Per-class test accuracy against imbalance (Fig. 2)\n")
a0 = res[labels[0]]["accuracy"]
rows = [["class", "train items", "imbalance n_c/n_max", *(f"acc. {lab}" for lab in labels)]]
for c, name in enumerate(a0.classes):
    rows.append(
        [name, str(int(a0.train_counts[c])), f"{a0.imbalance[c]:.3f}"]
        + [f"{100 * res[lab]['accuracy'].accuracy[c]:.1f}%" for lab in labels]
    )
print(md(rows) + "\n")

print("### Archetypes per class, K = 5 (Fig. 3): items (% true positives)\n")
rows = [["class", *(f"{a} {lab}" for lab in labels for a in ARCHETYPES)]]
for c, name in enumerate(a0.classes):
    row = [name]
    for lab in labels:
        ar = res[lab]["archetypes"]
        for a in range(len(ARCHETYPES)):
            n = int(ar.counts[c, a])
            tp = ar.tp_share[c, a]
            row.append(f"{n} (-)" if n == 0 else f"{n} ({100 * tp:.0f}%)")
    rows.append(row)
tot = ["all"]
for lab in labels:
    ar = res[lab]["archetypes"]
    for a in range(len(ARCHETYPES)):
        tot.append(str(int(ar.counts[:, a].sum())))
rows.append(tot)
print(md(rows) + "\n")

print("### Table II: mean KL divergence to the validation false positives (nats)\n")
rows = [
    [
        "model",
        "NNB (nearest adversaries)",
        "FDR (Fisher ratio)",
        "random",
        "random : NNB",
        "reference classes scored",
    ]
]
for lab in labels:
    ad = res[lab]["adversaries"]
    t = ad.table_ii
    rows.append(
        [
            lab,
            f"{t['nnb']:.4f}",
            f"{t['fdr']:.4f}",
            f"{t['random']:.4f}",
            f"{t['random_over_nnb']:.3f}",
            str(int((~np.isnan(ad.kld[0])).sum())),
        ]
    )
rows.append(
    [
        "paper, CIFAR-10-LT ResNet-32 (Dablain et al.)",
        *(f"{PAPER[k]}" for k in ("nnb", "fdr", "random", "random_over_nnb")),
        "-",
    ]
)
print(md(rows) + "\n")

print("### Per reference class: validation false positives and KLD (NNB / FDR / random)\n")
rows = [["reference class", *(f"{lab}: FPs, NNB / FDR / random" for lab in labels)]]
for c, name in enumerate(a0.classes):
    row = [name]
    for lab in labels:
        ad = res[lab]["adversaries"]
        k = ad.kld[:, c]
        fp = int(ad.validation_fp[c].sum())
        row.append(f"{fp}: " + (" / ".join("-" if np.isnan(v) else f"{v:.3f}" for v in k)))
    rows.append(row)
print(md(rows) + "\n")

print("### Largest validation confusion and largest nearest adversary per reference class\n")
rows = [["reference class", *(f"{lab}: top FP source / top NNB" for lab in labels)]]
for c, name in enumerate(a0.classes):
    row = [name]
    for lab in labels:
        ad = res[lab]["adversaries"]
        v, q = ad.validation_share[c], ad.nnb_share[c]
        fp = (
            "-"
            if np.all(np.isnan(v))
            else f"{ad.classes[int(np.nanargmax(v))]} {100 * np.nanmax(v):.0f}%"
        )
        nb = (
            "-"
            if np.all(np.isnan(q))
            else f"{ad.classes[int(np.nanargmax(q))]} {100 * np.nanmax(q):.0f}%"
        )
        row.append(f"{fp} / {nb}")
    rows.append(row)
print(md(rows) + "\n")

print("### Top-10 feature overlap (Fig. 6): most shared pairs\n")
for lab in labels:
    tf = res[lab]["top_features"]
    ov = np.array(tf.overlap, dtype=float)
    np.fill_diagonal(ov, -1)
    iu = np.triu_indices(ov.shape[0], 1)
    order = np.argsort(-ov[iu], kind="stable")[:4]
    pairs = ", ".join(
        f"{tf.classes[iu[0][i]]}-{tf.classes[iu[1][i]]} {int(ov[iu][i])}" for i in order
    )
    print(f"- {lab}: {pairs} (of {tf.top_k})")
print()

print("### Feature density of the reference class's top-10 features (Fig. 10)\n")
for lab in labels:
    de = res[lab]["density"]
    print(
        f"- {lab}: reference **{de.classes[de.reference]}** ({int(de.class_sizes[de.reference])} "
        f"training items), features {[int(f) for f in de.features]}"
    )
print()
rows = [
    [
        "class",
        "train items",
        *(f"summed density {lab}" for lab in labels),
        *(f"x reference's own count {lab}" for lab in labels),
        *(f"per item of the class {lab}" for lab in labels),
    ]
]
d0 = res[labels[0]]["density"]
for c, name in enumerate(d0.classes):
    rows.append(
        [name + (" (ref.)" if c == d0.reference else ""), str(int(d0.class_sizes[c]))]
        + [f"{res[lab]['density'].density[c].sum():.2f}" for lab in labels]
        + [
            f"{res[lab]['density'].counts[c].sum() / max(1, res[lab]['density'].counts[res[lab]['density'].reference].sum()):.2f}"
            for lab in labels
        ]
        + [
            f"{res[lab]['density'].counts[c].sum() / res[lab]['density'].class_sizes[c]:.2f}"
            for lab in labels
        ]
    )
print(md(rows) + "\n")

print("### Colours of the top 10% salient pixels (Fig. 7): share per bin\n")
for lab in labels:
    co = res[lab]["colours"]
    used = [b for b in range(len(COLOUR_BINS)) if co.counts[:, b].sum() > 0]
    share = co.share
    rows = [["class", "images", *(COLOUR_BINS[b] for b in used)]]
    for c, name in enumerate(co.classes):
        rows.append([name, str(int(co.images[c]))] + [f"{100 * share[c, b]:.1f}" for b in used])
    print(f"{lab} (bins with any pixel; %):\n")
    print(md(rows) + "\n")
