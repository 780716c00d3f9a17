"""The ``thresher`` command line (typer + rich). All work happens in the library; this is I/O."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from thresher.errors import ThresherError

app = typer.Typer(
    name="thresher",
    help="See an image-classification data set through the eyes of its model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and download data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

out = Console()
err = Console(stderr=True)

RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="Data root (default: $THRESHER_DATA).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:N (default: CUDA if present).")
]
PrecisionOpt = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="auto (bf16 where the CPU/GPU has it), fp32, bf16 or fp16 for the models this "
        "command trains (default: the run recipe's).",
    ),
]
EngineOpt = Annotated[
    str, typer.Option("--engine", help="local (this process) or ray (needs the ray extra).")
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="A running Ray cluster (default: start a local one)."),
]


def _print_json(obj: Any) -> None:
    from thresher.store import dumps

    sys.stdout.write(dumps(obj))


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    if debug:
        os.environ["THRESHER_DEBUG"] = "1"


# --- models / layers ----------------------------------------------------------------------------
@app.command("models")
def models_cmd(as_json: JsonOpt = False) -> None:
    """List the registered model architectures."""
    from thresher.models import MODELS, model_spec

    rows = [
        {
            "name": n,
            "input_size": model_spec(n).input_size,
            "recipe": model_spec(n).recipe,
            "description": model_spec(n).description,
        }
        for n in MODELS.names()
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("name", "input", "recipe", "description", title="Registered models")
    for r in rows:
        size = "any" if r["input_size"] is None else "x".join(map(str, r["input_size"]))
        table.add_row(str(r["name"]), size, str(r["recipe"]), str(r["description"]))
    out.print(table)
    out.print("Also: tv:<torchvision name>, timm:<timm name>.")


@app.command("selectors")
def selectors_cmd(as_json: JsonOpt = False) -> None:
    """The registered selectors: `filter --baseline NAME --keep PCT`, `compare --methods NAME`."""
    from thresher.filter import SELECTORS

    rows = [
        {
            "name": name,
            "description": SELECTORS.get(name).description,
            "needs_embeddings": SELECTORS.get(name).needs_embeddings,
            "needs_labels": SELECTORS.get(name).needs_labels,
            "needs_signals": list(SELECTORS.get(name).needs_signals),
        }
        for name in SELECTORS.names()
    ]
    if as_json:
        _print_json(rows)
        return
    grid = Table("selector", "needs", "description", title="selectors")
    for r in rows:
        needs = ", ".join(
            w
            for w, on in (
                ("embeddings", r["needs_embeddings"]),
                ("labels", r["needs_labels"]),
                ("training dynamics", bool(r["needs_signals"])),
            )
            if on
        )
        grid.add_row(str(r["name"]), needs or "ids", str(r["description"]))
    out.print(grid)


@app.command("layers")
def layers_cmd(
    model_or_run: Annotated[str, typer.Argument(help="A registered model name or a run dir.")],
    in_channels: Annotated[int, typer.Option(help="Input channels (model names only).")] = 1,
    size: Annotated[int, typer.Option(help="Input height/width (model names only).")] = 28,
    num_classes: Annotated[int, typer.Option(help="Classes (model names only).")] = 10,
    separation: Annotated[
        bool,
        typer.Option(
            help="Runs only: k-NN label agreement of every layer on a sample of the training "
            "set, and the layer that separates the classes best (a filter layer suggestion)."
        ),
    ] = False,
    sample: Annotated[int, typer.Option(help="Images sampled for --separation.")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """List every layer of a model with its output shape (penultimate marked)."""
    from thresher.embed import default_layer, list_layers
    from thresher.errors import ConfigError
    from thresher.models import create_model, model_spec

    scores: dict[str, float] = {}
    if separation and not Path(model_or_run).is_dir():
        raise ConfigError("--separation needs a run directory (its training images and labels)")
    if Path(model_or_run).is_dir():
        from thresher.workflows.run import (
            open_run,
            run_dataset,
            run_input_shape,
            run_model,
            run_transform,
        )

        run = open_run(model_or_run)
        net = run_model(run)
        name = run.config["model"]["name"]
        shape = run_input_shape(run)
    else:
        name = model_or_run
        net = create_model(name, num_classes=num_classes, in_channels=in_channels)
        spec_size = model_spec(name).input_size
        shape = (1, in_channels, *(spec_size or (size, size)))
    spec = model_spec(name)
    layers = list_layers(net, input_shape=shape)
    penult = default_layer(net, spec.feature_layer, input_shape=shape)
    if separation:
        from thresher.embed.separation import layer_separation

        found = layer_separation(
            net,
            run_dataset(run, "train"),
            [la.name for la in layers],
            transform=run_transform(run),
            sample=sample,
        )
        scores = {s.layer: s.agreement for s in found}
    best = max(scores, key=lambda la: (scores[la], la == penult)) if scores else None
    if as_json:
        rows = [
            {**_asdict(la), **({"knn_agreement": scores[la.name]} if scores else {})}
            for la in layers
        ]
        _print_json({"model": name, "default": penult, "best_separation": best, "layers": rows})
        return
    columns = ["layer", "type", "output shape", "features"]
    if scores:
        columns.append("k-NN label agreement")
    table = Table(*columns, title=f"{name} layers")
    for la in layers:
        mark = " (default)" if la.name == penult else ""
        mark += " (best separation)" if la.name == best else ""
        row = [la.name + mark, la.type, str(tuple(la.output_shape)), str(la.num_features)]
        if scores:
            row.append(f"{scores[la.name]:.3f}")
        table.add_row(*row)
    out.print(table)
    if best is not None:
        out.print(f"suggested filter layer: --layer {best} (classes separate best there)")


def _asdict(obj: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(obj)


# --- data ---------------------------------------------------------------------------------------
@data_app.command("info")
def data_info_cmd(
    dataset: Annotated[
        str, typer.Argument(help="mnist | fashion-mnist | cifar10 | cifar100 | digits | PATH")
    ],
    root: RootOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Counts per class and split, image shape and imbalance of a data set."""
    from thresher.data import dataset_info, load_dataset

    infos = {}
    for split in ("train", "test"):
        infos[split] = dataset_info(load_dataset(dataset, root=root, split=split))
    if as_json:
        _print_json(infos)
        return
    tr, te = infos["train"], infos["test"]
    boxes = "boxes" in tr  # a detection set: counts are boxes, the images are counted apart
    table = Table("class", "train", "test", title=f"{dataset}" + (" (boxes)" if boxes else ""))
    for c in tr["classes"]:
        table.add_row(c, str(tr["counts"].get(c, 0)), str(te["counts"].get(c, 0)))
    if boxes:
        table.add_row("[b]boxes", str(tr["boxes"]), str(te["boxes"]))
    table.add_row("[b]images" if boxes else "[b]total", str(tr["size"]), str(te["size"]))
    out.print(table)
    ratio = tr["imbalance_ratio"]
    out.print(
        f"images {'x'.join(map(str, tr['shape']))} {tr['dtype']}; train imbalance (max/min) "
        + (f"{ratio:.2f}" if ratio is not None else "n/a (unlabelled)")
    )


@data_app.command("detection")
def data_detection_cmd(
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder to write (must not hold the splits).")
    ],
    source: Annotated[
        str, typer.Option("--from", help="mnist or fashion-mnist: the real images to place.")
    ] = "mnist",
    train_count: Annotated[int, typer.Option("--train", help="Training canvases.")] = 2000,
    test_count: Annotated[int, typer.Option("--test", help="Test canvases.")] = 500,
    canvas: Annotated[int, typer.Option(help="Canvas side in pixels.")] = 64,
    formats: Annotated[
        str, typer.Option("--format", help="yolo, coco or yolo,coco (subfolders of --out).")
    ] = "yolo,coco",
    seed: Annotated[int, typer.Option(help="Seed of the placement draws.")] = 0,
    root: RootOpt = None,
) -> None:
    """Write a detection set built from real digits or clothes (1-3 per canvas, tight boxes)
    as YOLO and/or COCO folders: a known-answer set for the detection commands."""
    from thresher.data import load_dataset
    from thresher.data.detection import make_canvases
    from thresher.data.detection_io import write_coco, write_yolo
    from thresher.errors import ConfigError

    writers = {"yolo": write_yolo, "coco": write_coco}
    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    bad = [f for f in chosen if f not in writers]
    if bad or not chosen:
        raise ConfigError(f"unknown format {bad[0] if bad else formats!r}; use yolo, coco or both")
    if source not in ("mnist", "fashion-mnist"):
        raise ConfigError(f"--from must be mnist or fashion-mnist, got {source!r}")
    targets = [out_dir / f for f in chosen]
    taken = [t for t in targets if t.exists() and any(t.iterdir())]
    if taken:  # checked before anything is decoded or written
        raise ConfigError(f"{taken[0]} already holds files; choose a new --out")
    sets = {}
    for split, count, offset in (("train", train_count, 1), ("test", test_count, 2)):
        digits = load_dataset(source, root=root, split=split)
        sets[split] = make_canvases(
            digits, count=count, canvas=canvas, seed=seed * 10 + offset,
            name=f"{source}-detection/{split}",
        )  # fmt: skip
    for fmt, target in zip(chosen, targets, strict=True):
        for split, ds in sets.items():
            writers[fmt](ds, target, split=split)
        out.print(f"wrote {fmt.upper()} to {target} ({train_count} train + {test_count} test)")


@data_app.command("fetch")
def data_fetch_cmd(
    dataset: Annotated[str, typer.Argument(help="mnist | fashion-mnist | cifar10 | cifar100")],
    root: RootOpt = None,
    force: Annotated[bool, typer.Option(help="Download again even if present.")] = False,
    base_url: Annotated[
        str | None, typer.Option(help="A mirror holding <name>/<file> (or $THRESHER_MIRROR).")
    ] = None,
) -> None:
    """Download a data set from its canonical source, verify checksums, resume partial files."""
    from thresher.data import fetch

    target = root or os.environ.get("THRESHER_DATA")
    if target is None:
        raise ThresherError("no data root: pass --root DIR or set THRESHER_DATA")
    res = fetch(dataset, root=Path(target), force=force, base_url=base_url)
    for rel in res.downloaded:
        out.print(f"downloaded and verified {res.root / rel}")
    for rel in res.present:
        out.print(f"already present, verified {res.root / rel}")
    for rel in res.extracted:
        out.print(f"extracted {res.root / rel}")


# --- train / embed / evaluate -------------------------------------------------------------------
@app.command("train")
def train_cmd(
    dataset: Annotated[
        str, typer.Argument(help="mnist | fashion-mnist | cifar10 | cifar100 | digits | PATH")
    ],
    model: Annotated[
        str, typer.Option("--model", help="Registered model (see `thresher models`).")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to create.")],
    root: RootOpt = None,
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (bf16 where the CPU/GPU has it), fp32, bf16 or fp16 (default: the "
            "recipe's, fp32). Stored in the run's recipe: evaluate and compare retrain with it."
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Train on a stratified N-sample subset.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    recipe: Annotated[
        str | None, typer.Option(help="Training recipe (default: the model's).")
    ] = None,
    longtail: Annotated[
        float | None, typer.Option(help="Make the train split long-tailed at this ratio.")
    ] = None,
    longtail_kind: Annotated[str, typer.Option(help="exp or step.")] = "exp",
    overwrite: Annotated[bool, typer.Option(help="Reuse a non-empty --out.")] = False,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a data set's training split and test it; results go to a run dir."""
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    res = train_run(
        out_dir,
        data=DataSpec(
            name=dataset,
            root=str(root) if root else None,
            limit=limit,
            seed=seed,
            longtail_ratio=longtail,
            longtail_kind=longtail_kind,
        ),
        model=model,
        recipe=recipe,
        epochs=epochs,
        precision=precision,
        seed=seed,
        device=device,
        overwrite=overwrite,
    )
    if as_json:
        _print_json(res.to_dict())
        return
    if res.task == "detection":
        tested = (
            f"test mAP50 [b]{res.map50:.3f}[/b], mAP50-95 [b]{res.map50_95:.3f}[/b], "
            f"score (0.1 mAP50 + 0.9 mAP50-95) [b]{res.score:.3f}[/b]"
        )
    else:
        tested = f"test accuracy [b]{100 * (res.test_accuracy or 0.0):.2f}%[/b]"
    out.print(
        f"[b]{res.model}[/b] on {res.dataset} ({res.train_size} images, {res.epochs} epochs, "
        f"{res.device}): {tested} "
        f"in {res.seconds:.0f} s ({res.images_per_second:.0f} images/s)"
    )
    out.print(f"run: {res.run_dir}")


@app.command("embed")
def embed_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    layer: Annotated[str | None, typer.Option(help="Layer (default: penultimate).")] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    pooling: Annotated[
        str, typer.Option(help="How a 4-D feature map becomes a vector: flatten or avgpool.")
    ] = "flatten",
    precision: Annotated[
        str,
        typer.Option(
            help="fp32 (default: comparable across runs), auto, bf16 or fp16; each precision "
            "is its own cache entry."
        ),
    ] = "fp32",
    device: DeviceOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Extract (and cache) the embeddings of one layer for every sample of a split."""
    from thresher.errors import ConfigError
    from thresher.workflows.embed import embed_run
    from thresher.workflows.run import open_run

    if pooling not in ("flatten", "avgpool"):
        raise ConfigError(f"--pooling must be flatten or avgpool, got {pooling!r}")
    mode: Literal["flatten", "avgpool"] = "flatten" if pooling == "flatten" else "avgpool"
    emb = embed_run(
        open_run(run_dir),
        layer=layer,
        split=split,
        pooling=mode,
        device=device,
        engine=engine,
        ray_address=ray_address,
        precision=precision,
    )
    info = {
        "layer": emb.layer,
        "split": split,
        "shape": list(emb.values.shape),
        "model_fingerprint": emb.model_fingerprint,
        "dataset_fingerprint": emb.dataset_fingerprint,
    }
    if as_json:
        _print_json(info)
        return
    out.print(
        f"embedded {info['shape'][0]} samples of {split} at {emb.layer}: {info['shape'][1]}-d"
    )


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    subset: Annotated[
        str | None,
        typer.Option(
            help="Ids to keep (txt/csv/json/parquet file), or `cutoff`: the reduction's cutoff "
            "subset against T and a balanced subset of its size (LRP-GUS Tables 4-5); "
            "`cutoff:knee` or `cutoff:drop` for that cutoff of the same trace."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Models to train (seeds 0..N-1).")] = 5,
    full_seeds: Annotated[
        int | None,
        typer.Option(
            help="With --subset cutoff: models on T, the whole training split (default: "
            "--seeds); fewer where time forces it, T_c and T_c(bal) keep --seeds."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the run recipe's epochs.")] = None,
    versus_random: Annotated[
        bool,
        typer.Option(
            "--versus-random",
            help="Also train on a random subset with the same class counts (same seeds) and "
            "report the paired difference: does the subset beat chance?",
        ),
    ] = False,
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain the run's model on a subset with N seeds: accuracy and per-class F1, mean +- std."""
    from thresher.errors import ConfigError
    from thresher.store import read_ids
    from thresher.workflows.evaluate import evaluate_run
    from thresher.workflows.run import open_run

    if subset is not None and subset.partition(":")[0] == "cutoff":
        from thresher.workflows.reduce import evaluate_cutoff, format_cutoff_table

        rule = subset.partition(":")[2] or None
        if rule not in (None, "drop", "knee"):
            raise ConfigError(f"--subset {subset}: use cutoff, cutoff:drop or cutoff:knee")
        cut = evaluate_cutoff(
            open_run(run_dir),
            rule=rule,
            seeds=seeds,
            full_seeds=full_seeds,
            epochs=epochs,
            device=device,
            precision=precision,
            engine=engine,
            ray_address=ray_address,
        )
        if as_json:
            _print_json(cut.to_dict())
            return
        rows = format_cutoff_table(cut)
        n_full = seeds if full_seeds is None else full_seeds
        models = (
            f"{seeds} models each" if n_full == seeds else f"{n_full} on T, {seeds} on each subset"
        )
        grid = Table(*rows[0], title=f"T, T_c and T_c(bal) ({cut.rule}), {models}")
        for row in rows[1:]:
            grid.add_row(*row)
        out.print(grid)
        return
    if full_seeds is not None:
        raise ConfigError(
            "--full-seeds sets the models on T for --subset cutoff only; use --seeds here"
        )
    path = Path(subset) if subset is not None else None
    ids = read_ids(path) if path is not None else None
    if versus_random and ids is None:
        raise ConfigError("--versus-random needs --subset FILE (the full set has no random twin)")
    run = open_run(run_dir)
    twin = None
    if versus_random:
        import numpy as np

        from thresher.workflows.evaluate import random_like

        twin = random_like(run, np.asarray(ids))  # checked before any training
    common: dict[str, Any] = {
        "seeds": seeds,
        "epochs": epochs,
        "device": device,
        "engine": engine,
        "ray_address": ray_address,
        "precision": precision,
    }
    name = path.stem if path else "full"
    res = evaluate_run(run, subset_ids=ids, name=name, **common)
    if twin is None:
        if as_json:
            _print_json(res.to_dict())
            return
        out.print(res.summary())
        return
    from thresher.evaluate.paired import paired_difference

    base = evaluate_run(run, subset_ids=twin, name=f"{name}-random", **common)
    diff = paired_difference(res.accuracy, base.accuracy)
    if as_json:
        _print_json(
            {"subset": res.to_dict(), "random": base.to_dict(), "versus_random": diff.to_dict()}
        )
        return
    out.print(f"subset: {res.summary()}")
    out.print(f"random, same class counts: {base.summary()}")
    verdict = (
        "beats random" if diff.significant and diff.mean > 0
        else "loses to random" if diff.significant
        else "not distinguishable from random"
    )  # fmt: skip
    out.print(f"subset - random: {diff.summary()} ({verdict} at 95%)")


# --- filter / export / compare -------------------------------------------------------------------
def _fraction(pct: float, *, name: str) -> float:
    from thresher.errors import ConfigError

    if not 0.0 <= pct < 100.0:
        raise ConfigError(f"{name} must be a percentage in [0, 100), got {pct:g}")
    return pct / 100.0


@app.command("filter")
def filter_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    outliers: Annotated[float, typer.Option(help="Percent removed as outliers.")] = 5.0,
    similar: Annotated[float, typer.Option(help="Percent removed as near-duplicates.")] = 5.0,
    layer: Annotated[str | None, typer.Option(help="Layer (default: penultimate).")] = None,
    projection: Annotated[
        str, typer.Option(help="Projection before filtering: pca, umap or none.")
    ] = "pca",
    dims: Annotated[int, typer.Option(help="N_reduce: dimensions after the projection.")] = 128,
    per_class: Annotated[
        bool | None,
        typer.Option(
            "--per-class/--global",
            help="Apply the percentages within each class, or over all (default: the "
            "preset's; default preset: per class when labels exist). With --baseline: keep "
            "--keep of every class (a class-aware budget) or of the whole (default).",
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="exact, scalable or auto.")] = "auto",
    outlier_score: Annotated[
        str,
        typer.Option(
            help="glosh, mst, knn, or auto (the preset's: knn for default; for thesis glosh "
            "up to 50k items, knn above)."
        ),
    ] = "auto",
    preset: Annotated[
        str,
        typer.Option(
            help="default (L2-normalised features, same-class cosine k-NN outliers, pixel "
            "copies; what won on the planted benchmark) or thesis (the thesis as written)."
        ),
    ] = "default",
    normalise: Annotated[
        str | None, typer.Option(help="l2 or none (default: the preset's).")
    ] = None,
    k: Annotated[
        int | None, typer.Option(help="Neighbours of the outlier score (default: the preset's).")
    ] = None,
    copies: Annotated[
        bool | None,
        typer.Option(
            "--copies/--no-copies",
            help="Remove aligned pixel copies first from the near-duplicate share "
            "(default: the preset's).",
        ),
    ] = None,
    label_issues: Annotated[
        float,
        typer.Option(help="Percent removed as label issues (needs `thresher labels RUN`)."),
    ] = 0.0,
    baseline: Annotated[
        str | None,
        typer.Option(help="A selector instead (random, uniqueness, ...: `thresher selectors`)."),
    ] = None,
    keep: Annotated[float | None, typer.Option(help="Percent kept (baselines).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    dynamics_seeds: Annotated[
        int,
        typer.Option(
            help="Trainings whose training dynamics the el2n, grand and forgetting selectors "
            "average (each a full training of the run's recipe; cached in the run)."
        ),
    ] = 3,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove outliers and semantic near-duplicates (or run a baseline) on the train split."""
    from thresher.errors import ConfigError
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import open_run

    if baseline is not None and keep is None:
        raise ConfigError("--baseline needs --keep PCT (the percentage of the data to keep)")
    if keep is not None and baseline is None:
        raise ConfigError(
            "--keep applies to --baseline only; add --baseline random|uniqueness or drop --keep"
        )
    if keep is not None and not 0.0 < keep <= 100.0:
        raise ConfigError(f"--keep must be a percentage in (0, 100], got {keep:g}")
    settings = FilterSettings(
        outliers=_fraction(outliers, name="--outliers"),
        similar=_fraction(similar, name="--similar"),
        layer=layer,
        projection=projection,
        dims=dims,
        per_class=per_class,
        method=method,
        outlier_score=outlier_score,
        baseline=baseline,
        keep=None if keep is None else keep / 100.0,
        seed=seed,
        preset=preset,
        normalise=normalise,
        k=k,
        copies=copies,
        label_issues=_fraction(label_issues, name="--label-issues"),
        dynamics_seeds=dynamics_seeds,
    )
    run = open_run(run_dir)
    result = run_filter(run, settings, device=device)
    info = result.to_dict()
    info["tag"] = settings.tag()
    info["outputs"] = str(run.file(f"filter/{settings.tag()}"))
    if as_json:
        _print_json(info)
        return
    out.print(result.summary())
    from thresher.optional import skipped_note

    note = skipped_note(("plotly", "matplotlib"), "the 3D view (cloud.html, cloud.png)")
    if note:
        from rich.markup import escape

        err.print(f"note: {escape(note)}; its coordinates are in cloud3d.npy")
        out.print(f"results: {info['outputs']}")
        return
    out.print(f"results, 3D view (cloud.html, cloud.png): {info['outputs']}")


@app.command("labels")
def labels_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.")],
    folds: Annotated[int, typer.Option(help="Cross-validation folds (models trained).")] = 5,
    epochs: Annotated[int | None, typer.Option(help="Override the run recipe's epochs.")] = None,
    method: Annotated[
        str,
        typer.Option(help="ensemble (default: + neighbour vote) or cleanlab (as cleanlab does)."),
    ] = "ensemble",
    layer: Annotated[str | None, typer.Option(help="Layer of the neighbour vote.")] = None,
    top: Annotated[int, typer.Option(help="Suspects to list.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the folds and the models.")] = 0,
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find likely wrong labels: cross-validated training, then confident learning (cleanlab)."""
    from thresher.workflows.labels import labels_run
    from thresher.workflows.run import open_run

    issues = labels_run(
        open_run(run_dir), folds=folds, epochs=epochs, method=method, layer=layer, seed=seed,
        device=device, precision=precision,
    )  # fmt: skip
    import numpy as np

    # Highest scores first, ties by id: the order `filter --label-issues` removes them in.
    order = [int(i) for i in np.lexsort((issues.ids, -issues.label_score))[:top]]
    if as_json:
        info = issues.to_dict()
        info["top"] = [
            {
                "id": str(issues.ids[i]),
                "label": int(issues.labels[i]),
                "suggested_label": int(issues.suggested_label[i]),
                "label_score": float(issues.label_score[i]),
                "is_label_issue": bool(issues.is_label_issue[i]),
            }
            for i in order
        ]
        _print_json(info)
        return
    out.print(issues.summary())
    grid = Table("id", "label", "suggested", "label score", "flagged", title="most likely wrong")
    for i in order:
        grid.add_row(
            str(issues.ids[i]),
            str(issues.labels[i]),
            str(issues.suggested_label[i]),
            f"{issues.label_score[i]:.3f}",
            "yes" if issues.is_label_issue[i] else "no",
        )
    out.print(grid)
    out.print(f"remove them with: thresher filter {run_dir} --label-issues PCT")


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a filter result.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="txt, csv, json, parquet, folder or index; yolo or coco for a detection run.",
        ),
    ],
    out_path: Annotated[Path, typer.Option("--out", help="File (lists, index) or new folder.")],
    tag: Annotated[str | None, typer.Option(help="Which filter result (default: newest).")] = None,
    ignore_tags: Annotated[
        bool,
        typer.Option(
            "--ignore-tags",
            help="Export the filter's kept set as is, without your keep/remove tags.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Export the kept samples of a filter: an id list, an image folder or an index CSV.

    Your verdicts (`thresher tag`, the app) are applied: images tagged remove leave the set,
    images tagged keep join it."""
    from thresher.workflows.export import export_run
    from thresher.workflows.run import open_run

    info = export_run(open_run(run_dir), fmt=fmt, out=out_path, tag=tag, apply_tags=not ignore_tags)
    if as_json:
        _print_json(info)
        return
    moved = info["tags"]
    note = ""
    if moved["removed_by_tag"] or moved["kept_by_tag"]:
        note = f" (your tags removed {moved['removed_by_tag']} and put back {moved['kept_by_tag']})"
    out.print(f"exported {info['count']} kept samples as {info['format']} to {info['path']}{note}")


@app.command("compare")
def compare_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    methods: Annotated[
        str | None,
        typer.Option(
            help="Comma list of selectors (random, uniqueness, ...: `thresher selectors`) and "
            "filter arms: similar, outliers, half, labels (needs `thresher labels RUN` first). "
            "Default random,uniqueness,similar,outliers,half; none when only --subset is given."
        ),
    ] = None,
    keep: Annotated[
        str | None,
        typer.Option(help="Comma list of kept percentages (default 95,90,80,50)."),
    ] = None,
    subset: Annotated[
        list[str] | None,
        typer.Option(
            help="A subset of your own, retrained beside a random one with the same class "
            "counts: `curated` (the newest filter's kept set with your keep/remove tags) or an "
            "id FILE (repeatable)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Models per subset (seeds 0..N-1).")] = 3,
    epochs: Annotated[int | None, typer.Option(help="Override the run recipe's epochs.")] = None,
    per_class: Annotated[
        bool | None,
        typer.Option(
            "--per-class/--global",
            help="Class-aware or global budgets for the filter methods (default: the preset's).",
        ),
    ] = None,
    filter_method: Annotated[
        str,
        typer.Option(help="Near-duplicate algorithm of the filter methods: exact, scalable, auto."),
    ] = "auto",
    preset: Annotated[
        str, typer.Option(help="Filter preset of the filter methods: default or thesis.")
    ] = "default",
    precision: PrecisionOpt = None,
    device: DeviceOpt = None,
    engine: EngineOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Retrain models on each method's subset at each kept share (the thesis's Table 1)."""
    from thresher.errors import ConfigError
    from thresher.workflows.compare import compare_run, format_compare
    from thresher.workflows.run import open_run

    if not subset:
        methods = methods or "random,uniqueness,similar,outliers,half"
        keep = keep or "95,90,80,50"
    elif methods and not keep:
        keep = "95,90,80,50"
    elif keep and not methods:
        methods = "random,uniqueness,similar,outliers,half"
    try:
        keeps = tuple(float(k) / 100.0 for k in (keep or "").split(",") if k.strip())
    except ValueError:
        raise ConfigError(f"--keep must be numbers separated by commas, got {keep!r}") from None
    names = tuple(m.strip() for m in (methods or "").split(",") if m.strip())
    run = open_run(run_dir)
    user_subsets = _user_subsets(run, subset or [])
    table = compare_run(
        run,
        subsets=user_subsets,
        methods=names,
        keeps=keeps,
        seeds=seeds,
        epochs=epochs,
        per_class=per_class,
        filter_method=filter_method,
        filter_preset=preset,
        engine=engine,
        ray_address=ray_address,
        device=device,
        precision=precision,
        progress=None if as_json else (lambda msg: err.print(f"training on {msg}")),
    )
    if as_json:
        _print_json(table.to_dict())
        return
    rows = format_compare(table)
    detection = table.metric == "score"
    what = "detection score (0.1 mAP50 + 0.9 mAP50-95)" if detection else "test accuracy (%)"
    title = f"{what}, mean ± std over {seeds} seeds"
    if "random" in names:
        title += "; (difference to random at the same size, paired by seed, p-value)"
    grid = Table(*rows[0], title=title)
    for row in rows[1:]:
        grid.add_row(*row)
    if detection:
        out.print(f"full data set: score {table.full_mean:.3f} ± {table.full_std:.3f}")
    else:
        out.print(f"full data set: {100 * table.full_mean:.2f} ± {100 * table.full_std:.2f} %")
    if table.methods:
        out.print(grid)
    if table.subsets:
        from thresher.workflows.compare import format_subsets

        rows = format_subsets(table)
        twin = "the same size" if detection else "the same class counts"
        user = Table(*rows[0], title=f"your subsets against random ones with {twin}")
        for row in rows[1:]:
            user.add_row(*row)
        out.print(user)


def _user_subsets(run: Any, specs: list[str]) -> dict[str, Any]:
    """``--subset`` values as ``{name: ids}``: ``curated`` or an id file (named by its stem)."""
    import re

    from thresher.errors import ConfigError
    from thresher.store import read_ids

    found: dict[str, Any] = {}
    for spec in specs:
        if spec == "curated":
            from thresher.workflows.curation import curated_set

            name, ids = "curated", curated_set(run).ids
        else:
            path = Path(spec)
            if not path.is_file():
                raise ConfigError(f"--subset {spec}: not `curated` and no such id file")
            name, ids = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)[:40] or "subset", read_ids(path)
        if name in found:
            raise ConfigError(f"--subset names {name!r} twice; give each subset once")
        found[name] = ids
    return found


# --- demo ---------------------------------------------------------------------------------------
@app.command("demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the demo run.")] = Path(
        "runs/demo"
    ),
    epochs: Annotated[
        int | None, typer.Option(help="Override the paper recipe's 15 epochs (quicker).")
    ] = None,
    device: DeviceOpt = None,
) -> None:
    """The main job, end to end on scikit-learn's real digits (ships with a dependency)."""
    from thresher.demo import run_demo

    run_demo(out_dir, device=device, epochs=epochs, echo=out.print)


def main() -> None:
    """Entry point: ThresherErrors become one line on stderr and exit 2 (``--debug`` for more)."""
    try:
        from thresher.device import configure_threads

        configure_threads()  # one thread per CPU the container really grants
        app(standalone_mode=False)
    except ThresherError as exc:
        if os.environ.get("THRESHER_DEBUG") == "1":
            raise
        from rich.markup import escape

        # escape: messages name things like thresher[report] that rich would read as markup
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # usage errors (typer's or click's) and our own bugs
        usage, stops = _usage_error_types()
        if isinstance(exc, usage) and hasattr(exc, "show"):
            exc.show()  # "Usage: ... Error: No such option: --x", as typer prints it
            sys.exit(getattr(exc, "exit_code", 2))
        if isinstance(exc, stops):
            sys.exit(getattr(exc, "exit_code", 1))
        raise


def _usage_error_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage errors, exits/aborts) of the typer in use: recent typer raises its own copy of
    click's exceptions (``typer._click``), older ones click's; both are caught."""
    usage: list[type] = []
    stops: list[type] = [typer.Exit, typer.Abort]
    base = getattr(getattr(typer, "exceptions", None), "TyperException", None)
    if isinstance(base, type):
        usage.append(base)
    try:
        import click
    except ImportError:  # typer without click
        pass
    else:
        usage.append(click.exceptions.ClickException)
        stops += [click.exceptions.Exit, click.exceptions.Abort]
    return tuple(usage), tuple(stops)


# Each product area's commands live in their own module (``thresher.cli.<area>``); importing one
# registers its commands on ``app``. Keep these imports last: the modules use the names above.
from thresher.cli import curation as _curation  # noqa: E402,F401
from thresher.cli import diagnose as _diagnose  # noqa: E402,F401
from thresher.cli import init as _init  # noqa: E402,F401
from thresher.cli import reduce as _reduce  # noqa: E402,F401
from thresher.cli import webapp as _webapp  # noqa: E402,F401
