"""Planted-corruption benchmark: does a filter find the junk a user planted?

Real images from ``$THRESHER_DATA`` (MNIST, Fashion-MNIST or CIFAR-10) get known corruptions
planted by seed (``thresher.planted``: foreign images, six kinds of copies, random and
confusable label flips, blank/saturated/tiny images). A model is trained on the corrupted set
as a user would (the run's model, a few epochs), its embeddings are taken at one or more layers,
out-of-sample probabilities come from 5-fold cross-validated training, and three detectors rank
every image for every corruption kind, side by side on the same inputs:

* ``thresher`` — Thresher's default preset (L2-normalised features, same-class cosine k-NN
  outliers, aligned pixel copies, ensemble label issues).
* ``thesis`` — the thesis's method as written (Euclidean GLOSH, semantic duplicates only by the
  embedding's nearest-neighbour similarity; it has no label-issue step).
* ``cleanlab`` — cleanlab's Datalab (``outlier``, ``near_duplicate``, ``label``) given the
  same features and the same out-of-sample probabilities.

Per kind: recall at the planted share (= precision there), recall at a 2% budget, average
precision of the ranking, and ``removed``: the share the actual filter removed when asked for
the planted shares (Thresher presets only). Results: ``benchmarks/results/planted_<data>.json``.

    python benchmarks/planted/run.py --dataset mnist --n 5000
    python benchmarks/planted/run.py --dataset cifar10 --n 5000 --epochs 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from thresher.data import load_dataset
from thresher.embed.extract import extract
from thresher.filter import filter_dataset
from thresher.filter.copies import copy_scores
from thresher.filter.labels import cross_val_pred_probs, label_issues
from thresher.filter.pipeline import preset
from thresher.models import model_spec, transform_for
from thresher.neighbours import NeighbourIndex, normalise_rows
from thresher.planted import FAMILY, KINDS, plant, score_ranking
from thresher.train import fit, get_recipe, predict

DEFAULTS = {
    "mnist": ("mnist_lenet", "fashion-mnist", 3),
    "fashion-mnist": ("fmnist_cnn", "mnist", 3),
    "cifar10": ("cifar_small", "fashion-mnist", 8),
}
OUTLIER_KINDS = [k for k in KINDS if FAMILY[k] == "outlier"]
COPY_KINDS = [k for k in KINDS if FAMILY[k] == "duplicate"]
LABEL_KINDS = [k for k in KINDS if FAMILY[k] == "label"]


def datalab_scores(features: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> dict:
    import pandas as pd
    from cleanlab import Datalab

    lab = Datalab(pd.DataFrame({"label": labels}), label_name="label", verbosity=0)
    lab.find_issues(
        features=features,
        pred_probs=probs,
        issue_types={"outlier": {}, "near_duplicate": {}, "label": {}},
    )
    issues = lab.get_issues()
    return {
        "outlier": 1.0 - issues["outlier_score"].to_numpy(),
        "duplicate": 1.0 - issues["near_duplicate_score"].to_numpy(),
        "label": 1.0 - issues["label_score"].to_numpy(),
    }


def embedding_nn_similarity(x: np.ndarray) -> np.ndarray:
    dist, _ = NeighbourIndex(normalise_rows(x), metric="cosine").knn(1)
    return 1.0 - dist[:, 0].astype(np.float64)


def score_all(name: str, scores: dict, record, ids, n_total: int) -> list[dict]:
    rows = []
    for family, kinds in (
        ("outlier", OUTLIER_KINDS),
        ("duplicate", COPY_KINDS),
        ("label", LABEL_KINDS),
    ):
        if family not in scores:
            continue
        for kind in kinds:
            if not record.mask(kind).any():
                continue
            s = score_ranking(scores[family], record, kind, ids=ids, budget=0.02)
            rows.append({"method": name, **s.to_dict()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", default="mnist", choices=sorted(DEFAULTS))
    ap.add_argument("--n", type=int, default=5000, help="clean images (stratified subset)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--layers", default="", help="comma-separated extra layers to embed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", default="fp32", help="training precision (fp32, auto)")
    ap.add_argument("--root", default=os.environ.get("THRESHER_DATA", "../shared/data"))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, foreign_name, epochs = DEFAULTS[args.dataset]
    epochs = args.epochs or epochs
    t0 = time.perf_counter()
    clean = load_dataset(args.dataset, root=args.root, split="train", limit=args.n, seed=args.seed)
    foreign = load_dataset(
        foreign_name, root=args.root, split="test", limit=2000, seed=args.seed + 1
    )
    data, record = plant(clean, foreign=foreign, seed=args.seed)
    ids = data.ids
    n = len(data)
    print(f"planted {args.dataset}: {n} images, {record.counts}", flush=True)
    recipe = get_recipe(model_spec(model).recipe).replace(epochs=epochs, precision=args.precision)
    tf = transform_for(model)
    trained = fit(model, data, recipe=recipe, seed=args.seed, transform=tf)
    t_train = time.perf_counter() - t0
    test = load_dataset(args.dataset, root=args.root, split="test")
    test_logits = predict(trained.model, test, transform=tf)
    test_accuracy = float((test_logits.argmax(1) == test.labels).mean())
    print(
        f"trained {model} for {epochs} epochs in {t_train:.0f} s: test accuracy "
        f"{100 * test_accuracy:.2f}% (on the corrupted set, as a user would)",
        flush=True,
    )
    probs = cross_val_pred_probs(model, data, folds=5, recipe=recipe, seed=args.seed, transform=tf)
    t_cv = time.perf_counter() - t0 - t_train
    print(f"5-fold out-of-sample probabilities in {t_cv:.0f} s", flush=True)
    layers = [model_spec(model).feature_layer or None] + [x for x in args.layers.split(",") if x]
    shares = {
        "outliers": sum(record.mask(k).sum() for k in OUTLIER_KINDS) / n,
        "similar": sum(record.mask(k).sum() for k in COPY_KINDS) / n,
        "label_issues": sum(record.mask(k).sum() for k in LABEL_KINDS) / n,
    }
    results = []
    removed = []
    for layer in layers:
        emb = extract(
            trained.model,
            data,
            layer=layer,
            transform=tf,
            pooling="avgpool" if layer and layer != layers[0] else "flatten",
        )
        x = emb.values
        lname = emb.layer
        print(f"layer {lname}: {x.shape}", flush=True)
        timings = {}
        # Thresher's default preset.
        t = time.perf_counter()
        lab = label_issues(probs, data.labels, ids=ids, embeddings=x, method="ensemble")
        default = filter_dataset(
            x,
            ids=ids,
            labels=data.labels,
            images=data.images,
            label_scores=lab.label_score,
            **shares,
            **preset("default"),
        )
        # The ranking of the outlier score alone (in the filter above, rows that went as
        # label issues or copies first carry no outlier score).
        default_outliers = filter_dataset(
            x, ids=ids, labels=data.labels, outliers=shares["outliers"], similar=0.0,
            **preset("default"),
        )  # fmt: skip
        pixel = copy_scores(data.images, embeddings=normalise_rows(x))
        timings["thresher"] = time.perf_counter() - t
        results += [
            {**r, "layer": lname}
            for r in score_all(
                "thresher",
                {
                    "outlier": default_outliers.outlier_score,
                    "duplicate": pixel.row_score,
                    "label": lab.label_score,
                },
                record,
                ids,
                n,
            )
        ]
        # The thesis as written (no label step).
        t = time.perf_counter()
        thesis = filter_dataset(
            x,
            ids=ids,
            labels=data.labels,
            outliers=shares["outliers"],
            similar=shares["similar"],
            **preset("thesis"),
        )
        timings["thesis"] = time.perf_counter() - t
        results += [
            {**r, "layer": lname}
            for r in score_all(
                "thesis",
                {"outlier": thesis.outlier_score, "duplicate": embedding_nn_similarity(x)},
                record,
                ids,
                n,
            )
        ]
        # cleanlab on the same features and probabilities; and cleanlab's own label ranking.
        t = time.perf_counter()
        dl = datalab_scores(x, data.labels, probs)
        timings["cleanlab"] = time.perf_counter() - t
        results += [{**r, "layer": lname} for r in score_all("cleanlab", dl, record, ids, n)]
        for name, res in (("thresher", default), ("thesis", thesis)):
            for kind in KINDS:
                mask = record.mask(kind)
                if not mask.any():
                    continue
                if kind in COPY_KINDS:  # a pair is removed when either member is
                    row_of = {s: i for i, s in enumerate(ids)}
                    src = np.array([row_of[s] for s in record.source_id[mask]])
                    hit = ~res.kept[mask] | ~res.kept[src]
                else:
                    hit = ~res.kept[mask]
                removed.append(
                    {"method": name, "layer": lname, "kind": kind, "removed": float(hit.mean())}
                )
        print(f"  seconds: {timings}", flush=True)
        for r in results:
            if r["layer"] == lname:
                print(
                    f"  {r['method']:9s} {r['kind']:17s} rec@planted {r['recall_at_planted']:.2f}"
                    f"  rec@2% {r['recall_at_budget']:.2f}  AP {r['average_precision']:.2f}",
                    flush=True,
                )
    out = {
        "dataset": args.dataset,
        "n_clean": args.n,
        "n_total": n,
        "planted": record.counts,
        "model": model,
        "epochs": epochs,
        "precision": args.precision,
        "test_accuracy": test_accuracy,
        "foreign": foreign_name,
        "seed": args.seed,
        "shares": shares,
        "scores": results,
        "removed_at_planted_share": removed,
        "wall_seconds": time.perf_counter() - t0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, torch threads {torch.get_num_threads()}",
    }
    path = Path(args.out or f"benchmarks/results/planted_{args.dataset}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path} ({out['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
