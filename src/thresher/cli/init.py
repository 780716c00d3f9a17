"""``thresher init RUN``: a run from the user's own model or precomputed embeddings (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from thresher.cli import DeviceOpt, JsonOpt, RootOpt, _print_json, app, out


def _floats(text: str | None, name: str) -> tuple[float, ...] | None:
    from thresher.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(
            f"--{name} takes numbers separated by commas (e.g. 0.485,0.456,0.406), got {text!r}"
        ) from None


@app.command("init")
def init_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory to create.")],
    data: Annotated[
        str | None,
        typer.Option(help="With --model: the data set (name or PATH) the model was trained on."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Your model: a registered name, tv:/timm: name, or your factory as "
            "module:callable or path/to/file.py:callable."
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(help="Trained weights: .safetensors, or .pt/.pth (loaded weights-only)."),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            help="Image side the model sees; an image folder is decoded once at this size "
            "(default: the model's input size, else the first image's shorter side)."
        ),
    ] = None,
    mean: Annotated[
        str | None, typer.Option(help="Input mean per channel in [0, 1] units, e.g. 0.5 or r,g,b.")
    ] = None,
    std: Annotated[str | None, typer.Option(help="Input std per channel in [0, 1] units.")] = None,
    recipe: Annotated[
        str | None, typer.Option(help="Recipe for later retraining (default: the model's).")
    ] = None,
    interface: Annotated[
        str | None,
        typer.Option(
            help="A FilterableInterface as module:Object (get_model, get_filterable_dataset, "
            "optional get_image and classes): embedded at --layer, nothing trained."
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(help="With --interface: the layer to embed (default: penultimate)."),
    ] = None,
    embeddings: Annotated[
        Path | None,
        typer.Option(help="Precomputed embeddings instead of a model: (N, D) .npy or .parquet."),
    ] = None,
    ids: Annotated[
        Path | None,
        typer.Option(help="With --embeddings: one id per row (.txt, .csv, .npy, .parquet)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(help="With --embeddings: one label (index or class name) per row."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="With --embeddings: the image folder whose relative paths are the ids."),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(help="With --embeddings: class names in label order, comma-separated."),
    ] = None,
    resize: Annotated[
        str,
        typer.Option(
            help="Image folders of mixed sizes: shorter-crop (shorter side to --size, centre "
            "crop), stretch, or none (all must be --size already)."
        ),
    ] = "shorter-crop",
    on_error: Annotated[
        str,
        typer.Option(
            "--on-error",
            help="An unreadable image in a folder: refuse (after the whole decode, naming every "
            "one) or skip (leave it out, listed in the run).",
        ),
    ] = "refuse",
    workers: Annotated[
        int | None, typer.Option(help="Decoding threads for image folders (default: all CPUs).")
    ] = None,
    root: RootOpt = None,
    seed: Annotated[int, typer.Option(help="Seed stored for later retraining.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Reuse a non-empty RUN directory.")] = False,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a run from a model you trained (--data, --model, --weights), from embeddings you
    computed elsewhere (--embeddings, --ids) or from a FilterableInterface (--interface);
    nothing is trained."""
    from thresher.errors import ConfigError

    given = [n for n, v in (("--model", model), ("--embeddings", embeddings),
                            ("--interface", interface)) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ConfigError(
            "thresher init needs either --model (with --data and usually --weights), "
            "--embeddings (with --ids) or --interface module:Object; give exactly one of them"
            + (f" (got {', '.join(given)})" if given else "")
        )
    if layer is not None and interface is None:
        raise ConfigError("--layer goes with --interface (for --model runs, use thresher embed)")
    if interface is not None:
        stray = [n for n, v in (("--data", data), ("--weights", weights), ("--ids", ids),
                                ("--labels", labels), ("--images", images)) if v is not None]  # fmt: skip
        if stray:
            raise ConfigError(f"{', '.join(stray)} do not go with --interface")
        from thresher.models.user import import_object
        from thresher.workflows.init import init_interface_run

        obj = import_object(interface, what="filterable interface")
        if isinstance(obj, type):  # a class: one instance, made with no arguments
            obj = obj()
        res = init_interface_run(
            run_dir,
            obj,
            reference=interface,
            layer=layer,
            size=size or 64,
            device=device,
            on_error=on_error,
            overwrite=overwrite,
        )
        _report(res, as_json)
        return
    if model is not None:
        stray = [n for n, v in (("--ids", ids), ("--labels", labels), ("--images", images),
                                ("--classes", classes)) if v is not None]  # fmt: skip
        if stray:
            raise ConfigError(f"{', '.join(stray)} go with --embeddings, not --model")
        if data is None:
            raise ConfigError("--model needs --data: the data set the model was trained on")
        from thresher.workflows.init import init_model_run
        from thresher.workflows.run import DataSpec

        res = init_model_run(
            run_dir,
            data=DataSpec(name=data, root=str(root) if root else None),
            model=model,
            weights=weights,
            size=size,
            mean=_floats(mean, "mean"),
            std=_floats(std, "std"),
            recipe=recipe,
            seed=seed,
            device=device,
            overwrite=overwrite,
            resize=resize,
            on_error=on_error,
            workers=workers,
        )
    else:
        stray = [n for n, v in (("--data", data), ("--weights", weights), ("--size", size),
                                ("--mean", mean), ("--std", std), ("--recipe", recipe))
                 if v is not None]  # fmt: skip
        if stray:
            raise ConfigError(f"{', '.join(stray)} go with --model, not --embeddings")
        from thresher.workflows.init import init_embeddings_run

        assert embeddings is not None
        res = init_embeddings_run(
            run_dir,
            embeddings=embeddings,
            ids=ids,
            labels=labels,
            images=images,
            classes=None if classes is None else tuple(c.strip() for c in classes.split(",")),
            overwrite=overwrite,
        )
    _report(res, as_json)


def _report(res: Any, as_json: bool) -> None:
    if as_json:
        _print_json(res.to_dict())
        return
    if res.origin == "model":
        tested = (
            f"test accuracy [b]{100 * res.test_accuracy:.2f}%[/b] on {res.test_size} images"
            if res.test_accuracy is not None
            else "no test split: not tested"
        )
        weights_note = "" if res.weights else " (no --weights: the builder's own weights)"
        out.print(
            f"[b]{res.model}[/b]{weights_note} on {res.dataset} ({res.train_size} images): {tested}"
        )
    else:
        labelled = f", {len(res.classes)} classes" if res.classes else ", unlabelled"
        out.print(
            f"{res.train_size} precomputed embeddings, {res.embedding_dim}-d{labelled}"
            + (f", images in {res.images}" if res.images else ", no images")
        )
    out.print(f"run: {res.run_dir}")
