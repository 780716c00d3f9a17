"""Shared fixtures. Real data come from THRESHER_DATA or ../shared/data beside the repo."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_SETS = ("mnist", "fashion-mnist", "cifar10-jpeg")


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("THRESHER_DATA", REPO.parent / "shared" / "data"))
    # Any one of the shared sets will do (a GPU machine is sent only what its tests read); a
    # test of a missing set then fails on the loader's message, which names the folder.
    if not any((root / name).is_dir() for name in SHARED_SETS):
        pytest.fail(
            f"real data not found at {root} (none of {', '.join(SHARED_SETS)}); "
            "set THRESHER_DATA to the shared data folder"
        )
    return root


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHER_PROGRESS", "0")


CliResult = tuple[int, str, str]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], CliResult]:
    """Run ``thresher ARGV`` in-process; returns (exit code, stdout, stderr)."""
    from thresher.cli import main

    def run(argv: list[str]) -> CliResult:
        old = sys.argv
        sys.argv = ["thresher", *argv]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = int(exc.code or 0)
        finally:
            sys.argv = old
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
