"""Runs for the app's browser tests and render benchmark (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_cloud_run(root: Path, data_root: Path, *, n: int = 50_000) -> Path:
    """A run over ``n`` real MNIST images with a stored filter result and 3D view: class
    clusters, 5% outliers, 5% near-duplicates pointing at kept items of their class."""
    from dataclasses import asdict

    from thresher.filter import FilterResult
    from thresher.store import Run
    from thresher.workflows.run import DataSpec, run_dataset

    spec = DataSpec(name="mnist", root=str(data_root), limit=n).resolved()
    run = Run.create(
        root / f"run{n}",
        config={
            "data": asdict(spec),
            "model": {"name": "mnist_lenet", "num_classes": 10, "in_channels": 1},
            "classes": [str(d) for d in range(10)],
        },
    )
    ds = run_dataset(run, "train")
    labels = np.asarray(ds.labels)
    n = len(ds)  # (the data set may hold fewer)
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(10, 3))
    coords = centres[labels] + rng.normal(size=(n, 3))
    order = rng.permutation(n)
    outliers, similar = order[: n // 20], order[n // 20 : n // 10]
    reason = np.full(n, "kept", dtype=object)
    reason[outliers] = "outlier"
    reason[similar] = "similar"
    kept_rows = np.flatnonzero(reason == "kept")
    rep = np.full(n, "", dtype=object)
    for c in range(10):
        pool = kept_rows[labels[kept_rows] == c]
        rows = similar[labels[similar] == c]
        rep[rows] = ds.ids[rng.choice(pool, size=len(rows))]
    coords[outliers] *= 2.5
    result = FilterResult(
        ids=np.asarray(ds.ids).astype(str),
        kept=reason == "kept",
        reason=reason.astype(str),
        score=rng.uniform(size=n),
        representative_id=rep.astype(str),
        labels=labels,
        method="filter",
    )
    tag = f"synthetic-{n // 1000}k"
    run.write_table(f"filter/{tag}/result.parquet", result.to_table())
    run.write_array(f"filter/{tag}/cloud3d.npy", coords.astype(np.float32))
    run.write_json(f"filter/{tag}/params.json", {"layer": "synthetic", "settings": {}})
    run.write_json("filter/latest.json", {"tag": tag})
    return run.path
