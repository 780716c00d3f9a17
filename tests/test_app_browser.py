"""The app in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``).

Screenshots go to ``$THRESHER_ARTIFACTS`` (default: pytest's temporary directory).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="browser tests need Debian's Chromium: apt-get install -y chromium",
)
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("THRESHER_ARTIFACTS")
    folder = Path(env) if env else tmp_path_factory.mktemp("artefacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn in a thread, stopped at the end of the module."""

    def __init__(self, run_dir: Path) -> None:
        import uvicorn

        from thresher.app.server import create_app

        self.port = _free_port()
        config = uvicorn.Config(
            create_app(run_dir), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from test_app_api import build_app_run

    with _Server(build_app_run(tmp_path_factory)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    """One context for the module: its HTTP and code caches keep plotly.js parsed once."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert errors == [], errors  # no uncaught JavaScript error on any view


def _legend(page: Any) -> list[str]:
    """The plot's legend entries (SVG text, so textContent rather than innerText)."""
    return list(
        page.eval_on_selector_all("#cloud-plot .legendtext", "els => els.map(e => e.textContent)")
    )


def _images_loaded(page: Any, selector: str) -> list[int]:
    return list(
        page.eval_on_selector_all(selector, "els => els.map(e => e.complete ? e.naturalWidth : 0)")
    )


def test_overview_shows_counts_and_sample_grids(page: Any, base_url: str, artefacts: Path) -> None:
    page.goto(f"{base_url}/#overview")
    page.wait_for_function("window.thresher.loaded.overview === true")
    rows = page.locator("#overview-counts tbody tr")
    assert rows.count() == 11  # ten digits + total
    assert rows.last.inner_text().split() == ["total", "200", str(_test_size(page, base_url))]
    page.wait_for_function(
        "[...document.querySelectorAll('#overview-samples img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = _images_loaded(page, "#overview-samples img")
    assert len(widths) == 100
    assert set(widths) == {8}
    page.screenshot(path=str(artefacts / "overview.png"), full_page=True)
    cursor = "getComputedStyle(document.querySelector('#overview-samples img')).cursor"
    assert page.evaluate(cursor) != "pointer"  # the grid's thumbnails do nothing on click
    # plotly.js (4.8 MB) is neither fetched nor parsed for a view without a plot
    assert page.evaluate("typeof window.Plotly") == "undefined"
    assert not page.evaluate(
        "performance.getEntriesByType('resource').some(r => r.name.includes('plotly'))"
    )


def _test_size(page: Any, base_url: str) -> int:
    info = page.request.get(f"{base_url}/api/overview").json()
    return int(info["splits"]["test"]["size"])


def test_click_a_point_in_the_cloud_shows_its_panel(
    page: Any, base_url: str, artefacts: Path
) -> None:
    page.goto(f"{base_url}/#cloud")
    page.wait_for_function("!!window.thresher.loaded.cloud")
    assert page.locator("#cloud-plot canvas").count() >= 1  # WebGL scene
    legend = _legend(page)
    assert [t.split(" ")[0] for t in legend] == ["kept", "outlier", "similar"]
    # a click as plotly reports it: the first near-duplicate (trace 2, point 0)
    page.evaluate(
        "document.getElementById('cloud-plot').emit('plotly_click',"
        " {points: [{curveNumber: 2, pointNumber: 0}]})"
    )
    page.wait_for_function("!!window.thresher.loaded.point")
    point = page.evaluate("window.thresher.loaded.point")
    assert point["reason"] == "similar"
    panel = page.locator("#point-panel").inner_text()
    assert point["id"] in panel
    assert "duplicates this kept image" in panel
    assert point["representative_id"] in panel
    page.wait_for_function(
        "[...document.querySelectorAll('#point-panel img')].every(i => i.complete)"
    )
    assert 0 not in _images_loaded(page, "#point-panel img")
    assert page.locator("#neighbours img").count() == 8
    pointer = "getComputedStyle(document.querySelector('#neighbours img')).cursor"
    assert page.evaluate(pointer) == "pointer"  # a neighbour opens its own panel
    page.screenshot(path=str(artefacts / "cloud-click.png"))
    # the selection: a marker on the point and a line to the kept image it duplicates
    selected = page.evaluate(
        "document.getElementById('cloud-plot').data.filter(t => t.name === 'selected')"
        ".map(t => t.x.length)"
    )
    assert selected == [2]
    colours = (
        "document.getElementById('cloud-plot').data.filter(t => t.name !== 'selected')"
        ".map(t => [t.name, t.marker.color])"
    )
    by_group = {n.split(" ")[0]: c for n, c in page.evaluate(colours)}
    hover = page.evaluate("document.getElementById('cloud-plot').data[0].text[0]")
    assert hover.startswith("digits/")  # the image's id and class, not only "kept (N)"
    assert " · " in hover
    assert by_group == {"kept": "#2ca02c", "outlier": "#d62728", "similar": "#1f77b4"}
    page.select_option("#cloud-colour", "label")
    page.wait_for_function("document.querySelectorAll('#cloud-plot .legendtext').length === 10")
    page.screenshot(path=str(artefacts / "cloud-by-class.png"))
    if page.locator('#cloud-colour option[value="archetype"]').is_enabled():
        page.select_option("#cloud-colour", "archetype")
        page.wait_for_function(
            "document.getElementById('cloud-plot').data.some(t => t.name.startsWith('safe'))"
        )
        by_type = {n.split(" ")[0]: c for n, c in page.evaluate(colours)}
        assert by_type["safe"] == by_group["kept"]  # green means fine in every mode
        assert by_type.get("outlier", "#d62728") == by_group["outlier"]  # red means outlier


def test_removed_grids_pair_each_near_duplicate_with_its_original(
    page: Any, base_url: str, artefacts: Path
) -> None:
    page.goto(f"{base_url}/#removed")
    page.wait_for_function("!!window.thresher.loaded.removed")
    pairs = page.locator("#removed-similar .pair")
    total = int(page.locator("#count-similar").inner_text().strip("()"))
    assert pairs.count() == min(total, 60) > 0
    assert pairs.first.locator("img").count() == 2
    assert page.locator("#removed-outlier img").count() > 0
    page.screenshot(path=str(artefacts / "removed.png"), full_page=True)


def test_run_a_filter_compare_and_export_from_the_page(
    page: Any, base_url: str, artefacts: Path, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/#filter")
    page.wait_for_function("window.thresher.loaded.filter === true")
    page.fill("input[name=outliers]", "2")
    page.fill("input[name=similar]", "20")
    page.fill("input[name=seed]", "7")
    page.click("#filter-run")
    page.wait_for_function("!!window.thresher.loaded.job")
    job = page.evaluate("window.thresher.loaded.job")
    assert job["status"] == "done", job
    assert job["counts"]["outlier"] == 4  # 2% of 200
    assert "done in" in page.locator("#job-text").inner_text()
    page.wait_for_function("!!window.thresher.loaded.compare")
    summary = page.locator("#compare-summary").inner_text()
    assert "Jaccard index of the removed sets" in summary
    page.screenshot(path=str(artefacts / "filter-compare.png"), full_page=True)
    page.select_option("#export-fmt", "txt")
    with page.expect_download() as dl:
        page.click("#export-link")
    path = tmp_path / "kept.txt"
    dl.value.save_as(path)
    ids = path.read_text().split()
    assert len(ids) == job["counts"]["kept"]
    assert ids[0].startswith("digits/")


def test_diagnostics_and_reduction_show_what_exists(
    page: Any, base_url: str, artefacts: Path
) -> None:
    page.goto(f"{base_url}/#diagnose")
    page.wait_for_function("window.thresher.loaded.diagnose === 4")
    protos = page.locator("#area-diagnose .prototypes .class-row")
    assert protos.count() == 10  # one row per class
    assert protos.first.locator("img").count() == 2  # safe and border; rare, outlier: none
    page.wait_for_function(
        "[...document.querySelectorAll('#area-diagnose img')].every(i => i.complete)"
    )
    assert 0 not in _images_loaded(page, "#area-diagnose img")
    assert page.locator("#area-diagnose img").count() == 1 + 20  # figure + prototypes
    assert "archetype" in page.locator("#area-diagnose table").first.inner_text()
    page.screenshot(path=str(artefacts / "diagnose.png"), full_page=True)
    page.goto(f"{base_url}/#reduce")
    page.wait_for_function("window.thresher.loaded.reduce === 0")
    assert "no reduction results yet" in page.locator("#area-reduce").inner_text()
    # a wide table (the LRP-GUS trace's per-class lists) scrolls inside its box, not the page
    import pyarrow as pa
    import pyarrow.parquet as pq

    state = page.request.get(f"{base_url}/api/overview").json()
    run_dir = Path(state["run"])
    (run_dir / "reduce").mkdir(exist_ok=True)
    wide = pa.table({"iteration": list(range(5)), "counts": [list(range(400))] * 5})
    pq.write_table(wide, run_dir / "reduce" / "trace.parquet")
    try:
        page.reload()
        page.wait_for_function("window.thresher.loaded.reduce === 1")
        assert page.locator("#area-reduce table").count() == 1
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= page.evaluate("window.innerWidth")
    finally:
        (run_dir / "reduce" / "trace.parquet").unlink()


# --- 50,000 points: time to first render (recorded, never asserted) --------------------------
def _synthetic_50k_run(root: Path, data_root: Path) -> Path:
    """A run over 50,000 real MNIST images with a stored filter result and 3D view: class
    clusters, 5% outliers, 5% near-duplicates pointing at kept items of their class."""
    from dataclasses import asdict

    from thresher.filter import FilterResult
    from thresher.store import Run
    from thresher.workflows.run import DataSpec, run_dataset

    spec = DataSpec(name="mnist", root=str(data_root), limit=50_000).resolved()
    run = Run.create(
        root / "run50k",
        config={
            "data": asdict(spec),
            "model": {"name": "mnist_lenet", "num_classes": 10, "in_channels": 1},
            "classes": [str(d) for d in range(10)],
        },
    )
    ds = run_dataset(run, "train")
    labels = np.asarray(ds.labels)
    n = len(ds)
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(10, 3))
    coords = centres[labels] + rng.normal(size=(n, 3))
    order = rng.permutation(n)
    outliers, similar = order[: n // 20], order[n // 20 : n // 10]
    reason = np.full(n, "kept", dtype=object)
    reason[outliers] = "outlier"
    reason[similar] = "similar"
    kept_rows = np.flatnonzero(reason == "kept")
    rep = np.full(n, "", dtype=object)
    for c in range(10):
        pool = kept_rows[labels[kept_rows] == c]
        rows = similar[labels[similar] == c]
        rep[rows] = ds.ids[rng.choice(pool, size=len(rows))]
    coords[outliers] *= 2.5
    result = FilterResult(
        ids=np.asarray(ds.ids).astype(str),
        kept=reason == "kept",
        reason=reason.astype(str),
        score=rng.uniform(size=n),
        representative_id=rep.astype(str),
        labels=labels,
        method="filter",
    )
    tag = "synthetic-50k"
    run.write_table(f"filter/{tag}/result.parquet", result.to_table())
    run.write_array(f"filter/{tag}/cloud3d.npy", coords.astype(np.float32))
    run.write_json(f"filter/{tag}/params.json", {"layer": "synthetic", "settings": {}})
    run.write_json("filter/latest.json", {"tag": tag})
    return run.path


@pytest.mark.slow
def test_first_render_of_50k_points(
    browser: Any, data_root: Path, artefacts: Path, tmp_path: Path
) -> None:
    run_dir = _synthetic_50k_run(tmp_path, data_root)
    with _Server(run_dir) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{url}/#cloud")
        page.wait_for_function("window.thresher.timings.cloudFirstFrame != null")
        timings = page.evaluate("window.thresher.timings")
        assert page.evaluate("window.thresher.loaded.cloud") == "synthetic-50k"
        legend = _legend(page)
        assert sum(int(t.split("(")[1].rstrip(")")) for t in legend) == 50_000
        page.evaluate(
            "document.getElementById('cloud-plot').emit('plotly_click',"
            " {points: [{curveNumber: 2, pointNumber: 10}]})"
        )
        page.wait_for_function("!!window.thresher.loaded.point")
        page.wait_for_function(
            "[...document.querySelectorAll('#point-panel img')].every(i => i.complete)"
        )
        page.screenshot(path=str(artefacts / "cloud-50k.png"))
        context.close()
    (artefacts / "first-render-50k.json").write_text(json.dumps(timings, indent=2))
    print(f"first render of 50,000 points: {timings}")
