"""``thresher reduce`` (LRP-GUS) and ``thresher explain`` (Fig. 1 of seed 000)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli import DeviceOpt, JsonOpt, PrecisionOpt, _print_json, app, err, out


@app.command("reduce")
def reduce_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (from `thresher train`).")],
    p0: Annotated[int, typer.Option("--p0", help="Initial images per class.")] = 2000,
    up: Annotated[float, typer.Option(help="Growth fraction of a class (0.05 = 5%).")] = 0.05,
    down: Annotated[float, typer.Option(help="Shrink fraction of a class (0.20 = 20%).")] = 0.20,
    lim: Annotated[float, typer.Option(help="Constraint fraction around the mean count.")] = 0.40,
    iterations: Annotated[int, typer.Option(help="Nmax: the most iterations.")] = 1000,
    cutoff: Annotated[
        str, typer.Option(help="drop:0.03 (the paper's rule) or knee.")
    ] = "drop:0.03",
    constraint: Annotated[
        str, typer.Option(help="lower (a shrink keeps >= (1-lim) mean) or band (two-sided).")
    ] = "lower",
    choice: Annotated[
        str, typer.Option(help="Class choice: max_abs_delta, max_delta, min_delta, random.")
    ] = "max_abs_delta",
    sampling: Annotated[
        str, typer.Option(help="nested or fresh subsets per iteration.")
    ] = "nested",
    eval_on: Annotated[
        str, typer.Option(help="validation (held out of T) or test (the paper; leaks the test).")
    ] = "validation",
    val_fraction: Annotated[float, typer.Option(help="Validation share per class.")] = 0.1,
    baseline: Annotated[
        bool, typer.Option(help="Also train a random balanced subset each iteration.")
    ] = True,
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    precision: PrecisionOpt = None,
    stop_after_cutoff: Annotated[
        int | None,
        typer.Option(
            help="Stop K iterations after the accuracy first falls below the drop line "
            "(T_c is fixed by then); default: run to Nmax."
        ),
    ] = None,
    composite: Annotated[str, typer.Option(help="LRP composite (epsilon, ...).")] = "epsilon",
    epsilon: Annotated[float, typer.Option(help="LRP epsilon.")] = 1e-4,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue a stored search.")] = False,
    restart: Annotated[bool, typer.Option(help="Discard a stored search.")] = False,
    figures: Annotated[bool, typer.Option(help="Write Fig. 2 and Fig. 3 PNGs.")] = True,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """LRP-GUS: search class proportions guided by LRP relevance; pick the cutoff subset."""
    from thresher.errors import ConfigError
    from thresher.explain import LRPSettings
    from thresher.lrp_gus.search import SearchSettings
    from thresher.progress import enabled
    from thresher.workflows.reduce import ReduceSettings, reduce_run
    from thresher.workflows.run import open_run

    if constraint not in ("lower", "band"):
        raise ConfigError(f"--constraint must be lower or band, got {constraint!r}")
    if sampling not in ("nested", "fresh"):
        raise ConfigError(f"--sampling must be nested or fresh, got {sampling!r}")
    if eval_on not in ("validation", "test"):
        raise ConfigError(f"--eval-on must be validation or test, got {eval_on!r}")
    settings = ReduceSettings(
        search=SearchSettings(
            p0=p0,
            up=up,
            down=down,
            lim=lim,
            iterations=iterations,
            constraint="lower" if constraint == "lower" else "band",
            choice=choice,
            sampling="nested" if sampling == "nested" else "fresh",
            baseline=baseline,
            seed=seed,
        ),
        cutoff=cutoff,
        eval_on="validation" if eval_on == "validation" else "test",
        val_fraction=val_fraction,
        epochs=epochs,
        lrp=LRPSettings(composite=composite, epsilon=epsilon),
        precision=precision,
        stop_after_cutoff=stop_after_cutoff,
    )
    run = open_run(run_dir)
    bar = None
    if not as_json and enabled():
        from tqdm.auto import tqdm

        bar = tqdm(total=iterations, desc="LRP-GUS", leave=False)

    def progress(rec: object) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                size=getattr(rec, "size", 0), acc=f"{100 * getattr(rec, 'accuracy', 0):.1f}"
            )

    try:
        res = reduce_run(
            run, settings, resume=resume, restart=restart, device=device, progress=progress
        )
    finally:
        if bar is not None:
            bar.close()
    info = res.to_dict()
    from rich.markup import escape

    from thresher.optional import skipped_note

    note = skipped_note(("matplotlib",), "figures") if figures else ""
    if figures and not note:
        from thresher.report.lrp_figures import save_search_figures

        info["figures"] = [str(p) for p in save_search_figures(run, res.trace, res)]
    if as_json:
        _print_json(info)
        return
    if note:
        err.print(f"note: {escape(note)}")
    out.print(res.summary())
    c = res.cutoff
    out.print(
        "T_c class counts: "
        + ", ".join(f"{n}={v}" for n, v in zip(res.trace.classes, c.counts, strict=False))
    )
    out.print(f"results: {run.file('reduce')}")
    if eval_on == "test":
        err.print(
            "note: the cutoff was chosen on the test set, so test accuracies are not held out"
        )


@app.command("explain")
def explain_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    index: Annotated[int, typer.Option(help="Position of the image in the split.")] = 0,
    split: Annotated[str, typer.Option(help="train or test.")] = "train",
    out_path: Annotated[Path, typer.Option("--out", help="PNG to write.")] = Path("lrp.png"),
    composite: Annotated[str, typer.Option(help="LRP composite.")] = "epsilon",
    epsilon: Annotated[float, typer.Option(help="LRP epsilon.")] = 1e-4,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fig. 1: normalised LRP maps of one image for every class (red +, blue -)."""
    from thresher.errors import ConfigError
    from thresher.explain import LRPSettings, explain_classes
    from thresher.optional import require
    from thresher.workflows.run import open_run, run_dataset, run_model, run_transform

    require("matplotlib", feature="thresher explain (it draws a PNG)")
    from thresher.report.lrp_figures import plot_class_maps

    run = open_run(run_dir)
    from thresher.workflows.evaluate_detection import require_classifier

    require_classifier(run, "thresher explain (LRP)")
    ds = run_dataset(run, split)
    if not 0 <= index < len(ds):
        raise ConfigError(f"--index must be in [0, {len(ds)}), got {index}")
    net = run_model(run)
    maps = explain_classes(
        net,
        ds.images[index],
        num_classes=ds.num_classes,
        transform=run_transform(run),
        settings=LRPSettings(composite=composite, epsilon=epsilon),
        device=device,
    )
    label = None if ds.labels is None else int(ds.labels[index])
    path = plot_class_maps(
        ds.images[index], maps, out_path, classes=ds.classes, label=label, title=str(ds.ids[index])
    )
    info = {"path": str(path), "id": str(ds.ids[index]), "label": label}
    if as_json:
        _print_json(info)
        return
    out.print(f"LRP maps of {info['id']} for all {ds.num_classes} classes: {path}")
