"""``thresher app RUN``: serve the local web app over a run directory.

The module is not called ``app.py``: importing ``thresher.cli.app`` would replace the Typer
object ``thresher.cli.app`` with the module (Python binds a submodule as an attribute of its
package), breaking every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from thresher.cli import app, err, out


@app.command("app")
def app_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback exposes the run.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
) -> None:
    """Open a run in the browser: overview, 3D point cloud, removed images, filter and export."""
    from thresher.errors import ConfigError
    from thresher.workflows.run import open_run

    open_run(run_dir)  # not a run: the usual one-line error before anything starts
    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    try:
        import uvicorn

        from thresher.app.server import create_app, is_loopback
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the app needs {exc.name}; install the extra: pip install 'thresher[app]'"
        ) from None
    if not is_loopback(host):
        err.print(
            f"[bold red]WARNING:[/bold red] binding to {host}: anyone who can reach this "
            "address can browse this run's images and start filters. There is no login. "
            "Use the default 127.0.0.1 unless you trust the whole network.",
            highlight=False,
        )
    shown = f"[{host}]" if ":" in host else host
    out.print(f"Thresher app for {run_dir}: open http://{shown}:{port}/  (Ctrl+C stops it)")
    log_config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "loggers": {
            "thresher.app": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
    uvicorn.run(
        create_app(run_dir, host=host, warm=True),
        host=host,
        port=port,
        access_log=False,  # thresher.app logs every request, with the reason for a refusal
        log_config=log_config,
    )
