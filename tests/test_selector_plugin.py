"""A selector registered in this test module (no other file touched) appears everywhere:
``filter --baseline``, ``compare --methods``, the app's filter API, ``thresher selectors`` and
the result's ``reason`` column."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thresher.filter import SELECTORS, SelectionInput, register_selector, select

Cli = Callable[[list[str]], tuple[int, str, str]]
NAME = "last_ids_first"


def _last_ids_first(inputs: SelectionInput) -> np.ndarray:
    """Remove the items whose ids sort last (a test selector with an obvious answer)."""
    order = np.argsort(np.argsort(inputs.ids, kind="stable"), kind="stable")
    return order.astype(np.float64)


@pytest.fixture(scope="module")
def plugin() -> Iterator[str]:
    register_selector(NAME, needs_embeddings=False)(_last_ids_first)
    try:
        yield NAME
    finally:
        SELECTORS.unregister(NAME)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from thresher.workflows.run import DataSpec
    from thresher.workflows.train import train_run

    out = tmp_path_factory.mktemp("plugin") / "r"
    train_run(out, data=DataSpec(name="digits", limit=200), model="mnist_lenet", epochs=1)
    return out


def test_select_keeps_the_first_ids_and_names_the_reason(plugin: str) -> None:
    ids = np.array([f"s{i:02d}" for i in range(10)])
    res = select(plugin, ids, keep=0.7)
    assert res.kept_ids.tolist() == ids[:7].tolist()
    assert set(res.reason[~res.kept]) == {plugin}
    assert res.counts[plugin] == 3  # the reason is a valid column value everywhere


def test_the_cli_lists_filters_and_compares_with_it(cli: Cli, run_dir: Path, plugin: str) -> None:
    code, out, err = cli(["selectors", "--json"])
    assert code == 0, err
    assert plugin in [row["name"] for row in json.loads(out)]
    code, out, err = cli(["filter", str(run_dir), "--baseline", plugin, "--keep", "90", "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert info["counts"][plugin] == 20
    code, out, err = cli(
        [
            "compare",
            str(run_dir),
            "--methods",
            f"random,{plugin}",
            "--keep",
            "90",
            "--seeds",
            "2",
            "--epochs",
            "1",
            "--json",
        ]
    )
    assert code == 0, err
    table = json.loads(out)
    assert table["methods"] == ["random", plugin]
    assert f"{plugin}-keep90" in table["cells"]
    assert "versus_random" in table["cells"][f"{plugin}-keep90"]


def test_the_app_accepts_it_and_refuses_unknown_ones(run_dir: Path, plugin: str) -> None:
    from fastapi.testclient import TestClient

    from thresher.app.server import create_app

    with TestClient(create_app(run_dir)) as client:
        r = client.post("/api/filter", json={"baseline": plugin, "keep": 80})
        assert r.status_code == 202, r.text
        job: dict[str, Any] = r.json()
        deadline = time.monotonic() + 120
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            job = client.get(f"/api/jobs/{job['id']}").json()
        assert job["status"] == "done", job
        assert job["counts"][plugin] == 40
        bad = client.post("/api/filter", json={"baseline": "no_such_selector", "keep": 80})
        assert bad.status_code in (400, 422)
        assert plugin in bad.text  # the refusal lists the registered selectors
