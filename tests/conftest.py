"""Shared fixtures. Real data come from THRESHER_DATA or ../shared/data beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("THRESHER_DATA", REPO.parent / "shared" / "data"))
    if not (root / "mnist").is_dir():
        pytest.fail(f"real data not found at {root}; set THRESHER_DATA to the shared data folder")
    return root


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THRESHER_PROGRESS", "0")
