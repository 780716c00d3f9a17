"""Why NNB does not beat random on CIFAR-10-LT here: forecasts of validation false positives
from training embeddings, from held-out embeddings, and from the class counts alone (issue 16).

    python benchmarks/diagnostics_lt/nnb_heldout.py CE=runs/iml40/ce LDAM-DRW=runs/iml40/ldam

The test split is cut in two class-stratified halves (seeded). Half B's false positives are the
truth every forecast is scored on (``KL(P_R || Q_R)`` per reference class R, averaged over the
classes with a false positive, as Table II); half A stands in for labelled images the model did
not train on. Forecasts of row R over the adversary classes A != R:

* ``nnb_train``: Table II's NNB, ``N[R, A]`` from the training embeddings (the K nearest
  training neighbours of R's training items that are labelled A).
* ``nnb_train_transposed``: ``N[A, R]``, A's training items with R-labelled neighbours. Row R
  of the false positives counts A-items *predicted as R*, which is what this direction counts.
* ``nnb_train_prior``, ``nnb_train_transposed_prior``: both, with each adversary class's count
  divided by its training size and multiplied by its size in the scored split (known without
  predictions): the training set is 100:1, the test set balanced, so raw counts over-forecast
  the head classes as adversaries.
* ``nnb_heldout`` and ``nnb_heldout_transposed``: the same counts among half A's embeddings
  (neighbours within half A): the memorisation test. A model that fits its training images
  pulls each class apart there, so training neighbourhoods stop showing the overlap that
  held-out images still have.
* ``fdr_train``, ``fdr_heldout``: Fisher's ratio forecast (``1 / FDR``).
* ``inverse_train_count``: ``Q_R(A) ∝ 1 / n_train(A)``, no embeddings at all: under a 100:1
  imbalance most errors are tail images predicted as head classes.
* ``random``: ``Dirichlet(1, ..., 1)``, 100 draws (Table II's baseline as Thresher defines it).
  Its mean KLD is ``sum_A P(A) (log P(A) + H_{C-2})`` with ``H_n`` the n-th harmonic number, so
  for 10 classes it cannot exceed ``H_8 = 2.718`` nats (all of a class's false positives from
  one adversary) whatever the model: the paper's 4.535 is beyond that ceiling.
* ``validation_half``: half A's own false positives (a validation set's forecast; the floor
  set by the noise between two halves).

Writes ``benchmarks/results/iml_table2_nnb_heldout.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np

from thresher.device import cpu_model
from thresher.diagnose.adversaries import (
    KLD_EPS,
    _fdr_forecast,
    adversary_counts,
    false_positive_counts,
    fisher_ratio,
    kl_divergence,
)
from thresher.neighbours import nearest_neighbours
from thresher.store import Run
from thresher.workflows.embed import embed_run

OUT = Path(__file__).resolve().parents[1] / "results" / "iml_table2_nnb_heldout.json"
K = 5
N_RANDOM = 100
SPLIT_SEED = 0
METHODS = (
    "nnb_train",
    "nnb_train_transposed",
    "nnb_train_prior",
    "nnb_train_transposed_prior",
    "nnb_heldout",
    "nnb_heldout_transposed",
    "fdr_train",
    "fdr_heldout",
    "inverse_train_count",
    "random",
    "validation_half",
)


def stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of two class-stratified halves of ``labels`` (sorted)."""
    rng = np.random.default_rng(seed)
    a, b = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        a.append(idx[: idx.size // 2])
        b.append(idx[idx.size // 2 :])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def mean_kld(truth: np.ndarray, forecasts: dict[str, np.ndarray], seed: int) -> dict[str, float]:
    """Table II's entry per forecast: mean over reference rows with a false positive."""
    c = truth.shape[0]
    rng = np.random.default_rng(seed)
    per: dict[str, list[float]] = {m: [] for m in METHODS}
    for r in range(c):
        others = np.array([a for a in range(c) if a != r])
        p = truth[r, others]
        if p.sum() == 0:
            continue
        for name, q in forecasts.items():
            per[name].append(kl_divergence(p, q[r, others], eps=KLD_EPS))
        draws = rng.dirichlet(np.ones(others.size), size=N_RANDOM)
        per["random"].append(float(np.mean([kl_divergence(p, q, eps=KLD_EPS) for q in draws])))
    return {m: float(np.mean(v)) for m, v in per.items()}


def analyse(run_path: Path) -> dict:
    run = Run.open(run_path)
    train = embed_run(run, split="train")
    test = embed_run(run, split="test")
    x, y = np.asarray(train.values, dtype=np.float32), np.asarray(train.labels)
    tx, ty, tp = (
        np.asarray(test.values, dtype=np.float32),
        np.asarray(test.labels),
        np.asarray(test.predictions),
    )
    c = int(max(y.max(), ty.max())) + 1
    half_a, half_b = stratified_halves(ty, SPLIT_SEED)
    truth = false_positive_counts(ty[half_b], tp[half_b], num_classes=c)
    n_train = np.bincount(y, minlength=c).astype(float)
    n_truth = np.bincount(ty[half_b], minlength=c).astype(float)

    nb_train = nearest_neighbours(x, k=K)
    nnb_train = adversary_counts(y, nb_train, num_classes=c)
    xa, ya = tx[half_a], ty[half_a]
    nb_held = nearest_neighbours(xa, k=K)
    nnb_held = adversary_counts(ya, nb_held, num_classes=c)

    def fdr_weights(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
        fdr = fisher_ratio(values, labels, num_classes=c)
        w = np.zeros((c, c))
        for r in range(c):
            others = [a for a in range(c) if a != r]
            w[r, others] = _fdr_forecast(np.nan_to_num(fdr[r, others], nan=np.inf))
        return w

    forecasts = {
        "nnb_train": nnb_train.astype(float),
        "nnb_train_transposed": nnb_train.T.astype(float),
        # A's count per training item of A, times A's items in the scored split
        "nnb_train_prior": nnb_train * (n_truth / n_train)[None, :],
        "nnb_train_transposed_prior": nnb_train.T * (n_truth / n_train)[None, :],
        "nnb_heldout": nnb_held.astype(float),
        "nnb_heldout_transposed": nnb_held.T.astype(float),
        "fdr_train": fdr_weights(x, y),
        "fdr_heldout": fdr_weights(xa, ya),
        "inverse_train_count": np.tile(1.0 / n_train, (c, 1)),
        "validation_half": false_positive_counts(ya, tp[half_a], num_classes=c).astype(float),
    }
    kld = mean_kld(truth, forecasts, seed=0)
    train_pred = np.asarray(train.predictions) if train.predictions is not None else None
    return {
        "run": str(run_path),
        "train_items": int(y.size),
        "train_accuracy": None if train_pred is None else float(np.mean(train_pred == y)),
        "test_accuracy": float(np.mean(tp == ty)),
        "heldout_items": int(half_a.size),
        "truth_items": int(half_b.size),
        "truth_false_positives": int(truth.sum()),
        # how much overlap each embedding shows: the share of K-NN pairs that cross classes
        "adversary_share_train": float(nnb_train.sum() / (y.size * K)),
        "adversary_share_heldout": float(nnb_held.sum() / (half_a.size * K)),
        "kld": kld,
        "random_over": {m: kld["random"] / v for m, v in kld.items() if v > 0},
    }


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: nnb_heldout.py NAME=RUN [NAME=RUN ...]")
    rows = {}
    for arg in argv:
        name, _, path = arg.partition("=")
        rows[name] = analyse(Path(path))
    out = {
        "k": K,
        "n_random": N_RANDOM,
        "split_seed": SPLIT_SEED,
        "eps": KLD_EPS,
        "random_ceiling_10_classes": float(sum(1.0 / i for i in range(1, 9))),
        "paper": {"nnb": 0.5561, "fdr": 0.5157, "random": 4.535},
        "models": rows,
        "machine": f"{cpu_model()}, {platform.machine()}",
    }
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    names = list(rows)
    print("| forecast | " + " | ".join(f"{n} KLD | {n} random : it" for n in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for m in METHODS:
        cells = []
        for n in names:
            v = rows[n]["kld"][m]
            cells += [f"{v:.4f}", f"{rows[n]['kld']['random'] / v:.2f}"]
        print(f"| `{m}` | " + " | ".join(cells) + " |")
    for n in names:
        r = rows[n]
        print(
            f"{n}: train acc {r['train_accuracy']}, test acc {r['test_accuracy']:.4f}, "
            f"cross-class K-NN pairs train {100 * r['adversary_share_train']:.2f}% "
            f"vs held-out {100 * r['adversary_share_heldout']:.2f}%, "
            f"{r['truth_false_positives']} false positives scored"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
