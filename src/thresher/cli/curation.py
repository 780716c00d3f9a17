"""``thresher tag RUN``: tag training images (keep, remove, review, free text) from the shell,
as the app's grid and image view do; ``thresher export`` and ``thresher compare --subset
curated`` apply the verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from thresher.cli import JsonOpt, _print_json, app, out


@app.command("tag")
def tag_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="An image id to tag (repeatable).")
    ] = None,
    ids_file: Annotated[
        Path | None, typer.Option("--ids", help="A file of ids (txt/csv/json/parquet).")
    ] = None,
    add: Annotated[
        list[str] | None,
        typer.Option(help="Tag to add: keep, remove, review or free text (repeatable)."),
    ] = None,
    remove: Annotated[list[str] | None, typer.Option(help="Tag to take off (repeatable).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Tag training images; with no ids, list the tags. Export and compare apply keep/remove."""
    from thresher.errors import ConfigError
    from thresher.store import read_ids
    from thresher.workflows.curation import load_tags, tag_counts, update_tags
    from thresher.workflows.run import open_run

    run = open_run(run_dir)
    wanted = list(ids or [])
    if ids_file is not None:
        wanted += [str(i) for i in read_ids(ids_file)]
    if not wanted:
        if add or remove:
            raise ConfigError("--add/--remove need images: --id ID (repeatable) or --ids FILE")
        tags = load_tags(run)
        counts = tag_counts(tags)
        if as_json:
            _print_json({"tags": {k: list(v) for k, v in tags.items()}, "counts": counts})
            return
        if not tags:
            out.print("no tagged images; tag some with --id ID --add keep|remove|review|TEXT")
            return
        grid = Table("tag", "images", title=f"{len(tags)} tagged images")
        for name, n in counts.items():
            grid.add_row(name, str(n))
        out.print(grid)
        return
    changed = update_tags(run, wanted, add=add or (), remove=remove or ())
    if as_json:
        _print_json({k: list(v) for k, v in changed.items()})
        return
    out.print(f"tagged {len(changed)} image(s); `thresher tag {run_dir}` lists all tags")
