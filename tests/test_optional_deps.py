"""A core install (no plotting extras): data results are written, figures skipped with a note,
figure-only commands refused before any work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from thresher import optional

Cli = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def core_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend plotly and matplotlib are not installed."""
    real = optional.installed
    monkeypatch.setattr(
        optional, "installed", lambda m: m not in ("plotly", "matplotlib") and real(m)
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("core") / "r"
    train_run(out, data=DataSpec(name="digits", limit=300), model="mnist_lenet", epochs=1)
    return out


def test_require_names_the_missing_module_and_the_extra(core_install: None) -> None:
    from thresher.errors import ConfigError

    assert optional.missing("numpy", "plotly") == ["plotly"]
    with pytest.raises(ConfigError, match=r"needs matplotlib.*pip install 'thresher\[report\]'"):
        optional.require("matplotlib", feature="drawing")


def test_filter_without_plotting_writes_results_and_skips_the_view(
    cli: Cli, run_dir: Path, core_install: None
) -> None:
    code, stdout, err = cli(["filter", str(run_dir), "--outliers", "5", "--similar", "5"])
    assert code == 0, err
    assert "results:" in stdout
    assert "3D view (cloud.html, cloud.png) skipped" in " ".join(err.split())
    assert "pip install 'thresher[report]'" in " ".join(err.split())
    tag = json.loads((run_dir / "filter" / "latest.json").read_text())["tag"]
    folder = run_dir / "filter" / tag
    assert (folder / "result.parquet").is_file()
    assert (folder / "cloud3d.npy").is_file()
    assert not (folder / "cloud.html").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert tag in manifest["steps"]["filter"]  # the step is recorded, not left half-done


def test_diagnose_without_plotting_records_results_without_figures(
    cli: Cli, run_dir: Path, core_install: None
) -> None:
    code, _, err = cli(["diagnose", str(run_dir), "--only", "accuracy"])
    assert code == 0, err
    assert "figures skipped" in err
    assert (run_dir / "diagnose" / "accuracy").is_dir()
    assert not (run_dir / "diagnose" / "accuracy" / "figure.png").exists()


def test_figure_commands_refuse_before_work(cli: Cli, run_dir: Path, core_install: None) -> None:
    code, _, err = cli(["explain", str(run_dir), "--out", str(run_dir / "x.png")])
    assert code != 0
    assert "pip install 'thresher[report]'" in " ".join(err.split())
    assert not (run_dir / "x.png").exists()
    code, _, err = cli(["report", str(run_dir)])
    assert code != 0
    assert "thresher report (a page of figures) needs matplotlib" in " ".join(err.split())
