"""``thresher diagnose`` and ``thresher report``: imbalanced-data diagnostics of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli import DeviceOpt, JsonOpt, _print_json, app, err, out


@app.command("diagnose")
def diagnose_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a trained model.")],
    only: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated analyses: accuracy, archetypes, adversaries, top_features, "
            "density, colours (default: all)."
        ),
    ] = None,
    k: Annotated[
        int, typer.Option("--k", help="Nearest neighbours (archetypes, adversaries).")
    ] = 5,
    top_k: Annotated[int, typer.Option("--top-k", help="Top-K features per class.")] = 10,
    reference: Annotated[
        str | None,
        typer.Option(help="Reference class of the feature density (default: the smallest)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random baseline and medoid samples.")] = 0,
    nnb_weighting: Annotated[
        str,
        typer.Option(
            help="Nearest-adversary forecast: class-prior (counts re-weighted from the training "
            "to the validation class sizes) or paper (raw counts, Algorithm 1)."
        ),
    ] = "class-prior",
    figures: Annotated[bool, typer.Option(help="Write figure.png per analysis.")] = True,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per-class accuracy, archetypes, nearest adversaries (Table II), top-K features, feature
    density and class colours, stored under RUN/diagnose/."""
    from thresher.workflows.diagnose import diagnose_run
    from thresher.workflows.run import open_run

    run = open_run(run_dir)
    results = diagnose_run(
        run,
        only=only,
        k=k,
        top_k=top_k,
        reference=reference,
        seed=seed,
        nnb_weighting=nnb_weighting,
        device=device,
        figures=figures,
        progress=None if as_json else lambda name: err.print(f"diagnose: {name}"),
    )
    info = {
        "run": str(run.path),
        "outputs": str(run.file("diagnose")),
        "analyses": {name: res.summary() for name, res in results.items()},
    }
    if as_json:
        _print_json(info)
        return
    from rich.markup import escape

    for name, res in results.items():
        summary = res.summary()
        out.print(f"[bold]{name}[/bold]: {escape(str(summary))}")
        if "warning" in summary:  # said on its own line, where it is not lost in the dict
            err.print(f"warning ({name}): {escape(summary['warning'])}")

    from thresher.optional import skipped_note

    note = skipped_note(("matplotlib",), "figures") if figures else ""
    if note:
        err.print(f"note: {escape(note)}")
        out.print(f"results: {info['outputs']}")
        return
    out.print(f"results and figures: {info['outputs']}; `thresher report {run.path}` for a page")


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with diagnostics.")],
    compare: Annotated[
        list[Path] | None,
        typer.Option(help="Another run to draw side by side (repeatable), e.g. LDAM vs CE."),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file (default: RUN/diagnose/report.html)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One self-contained HTML page with every diagnostics figure, table and prototype."""
    from thresher.optional import require
    from thresher.workflows.run import open_run

    require("matplotlib", feature="thresher report (a page of figures)")
    from thresher.report.html import write_report

    runs = [open_run(run_dir), *(open_run(p) for p in compare or [])]
    path = write_report(runs, out=out_path)
    if as_json:
        _print_json({"path": str(path), "runs": [str(r.path) for r in runs]})
        return
    out.print(f"report: {path}")
