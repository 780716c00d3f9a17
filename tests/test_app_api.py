"""The app's HTTP API over a real run: every endpoint, bad requests and traversal attempts."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

pytest.importorskip("fastapi", reason="the app tests need the app extra (thresher[app])")
from fastapi.testclient import TestClient

from thresher.app.server import create_app

RUN_NAME = "thresher-app-run"
TRAIN_SIZE = 200

# Record every file opened while ``_OPENED`` is active (audit hooks cannot be removed, so the
# hook is installed once and does nothing unless a test switches it on).
_OPENED: list[str] = []
_WATCH = {"on": False}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _WATCH["on"] and event == "open" and isinstance(args[0], str | bytes | Path):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


def build_app_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run shared by the app's test modules: mnist_lenet, 1 epoch, 200 real digits,
    one filter with its 3D view, and a few stand-in diagnostics files."""
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import DataSpec, open_run
    from thresher.workflows.train import train_run

    out = tmp_path_factory.getbasetemp() / RUN_NAME
    if (out / "filter" / "latest.json").is_file():
        return out
    train_run(
        out,
        data=DataSpec(name="digits", limit=TRAIN_SIZE),
        model="mnist_lenet",
        epochs=1,
        overwrite=True,
    )
    run = open_run(out)
    run_filter(run, FilterSettings(outliers=0.05, similar=0.10), device="cpu")
    # real diagnostics (the report's sections) plus two extra files: the app lists them too
    from PIL import Image

    from thresher.workflows.diagnose import diagnose_run

    diagnose_run(run, only="accuracy,archetypes", k=5)
    diag = out / "diagnose"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(diag / "figure.png")
    (diag / "summary.json").write_text(json.dumps([{"class": "0", "f1": 0.9}]))
    (diag / "secret.png").symlink_to("/etc/passwd")  # must be neither listed nor served
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_app_run(tmp_path_factory)


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(run_dir)) as c:
        yield c
        # the run is shared with test_app_grid: no filter of ours may land in it later
        assert c.app.state.filter_jobs.join(timeout=300)


@pytest.fixture
def watch_opens() -> Iterator[list[str]]:
    _OPENED.clear()
    _WATCH["on"] = True
    yield _OPENED
    _WATCH["on"] = False


def _latest(client: TestClient) -> str:
    return str(client.get("/api/filters").json()["latest"])


def _result(run_dir: Path, tag: str | None = None) -> Any:
    from thresher.workflows.filter import load_filter
    from thresher.workflows.run import open_run

    return load_filter(open_run(run_dir), tag)


# --- front end ---------------------------------------------------------------------------------
def test_page_and_scripts_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "<title>Thresher</title>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-eval" not in csp  # no plotly in the app: no code compiled from strings
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "cloud.js"):
        js = client.get(f"/static/{name}")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
    assert "PointCloud3D" in client.get("/static/cloud.js").text
    assert client.get("/static/nothing.js").json() == {"error": "no static file 'nothing.js'"}
    assert client.get("/vendor/plotly.min.js").status_code == 404


# --- overview, samples, images -----------------------------------------------------------------
def test_overview_counts_classes_and_imbalance(client: TestClient) -> None:
    o = client.get("/api/overview").json()
    train = o["splits"]["train"]
    assert train["size"] == TRAIN_SIZE
    assert sum(train["counts"].values()) == TRAIN_SIZE
    assert o["classes"] == [str(d) for d in range(10)]
    assert o["splits"]["test"]["size"] > 0
    counts = list(train["counts"].values())
    assert train["imbalance_ratio"] == pytest.approx(max(counts) / min(counts))
    assert "train" in o["steps"]
    assert "filter" in o["steps"]
    assert o["areas"] == {"diagnose": True, "reduce": False}


def test_sample_grid_ids_serve_as_png_images(client: TestClient) -> None:
    from PIL import Image

    groups = client.get("/api/samples?split=train&per_class=3").json()["groups"]
    assert [g["class"] for g in groups] == [str(d) for d in range(10)]
    for sid in groups[0]["ids"]:
        r = client.get("/api/image", params={"id": sid, "split": "train"})
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(r.content)).size == (8, 8)  # digits are 8x8


@pytest.mark.parametrize(
    "bad_id",
    [
        "../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/etc/passwd",
        "digits/../../../../etc/passwd",
        "C:\\Windows\\win.ini",
        "digits/99999",
    ],
)
def test_images_only_by_id_of_the_runs_own_data(
    client: TestClient, bad_id: str, watch_opens: list[str]
) -> None:
    r = client.get("/api/image", params={"id": bad_id})
    assert r.status_code == 404
    assert r.json()["error"] == f"no sample {bad_id!r} in the train split of this run"
    assert not [p for p in watch_opens if "passwd" in p or "win.ini" in p]


@pytest.mark.parametrize(
    "url",
    [
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/api/area/file?area=diagnose&name=../../manifest.json",
        "/api/area/file?area=diagnose&name=/etc/passwd",
        "/api/area/file?area=diagnose&name=secret.png",
        "/api/area/file?area=..&name=passwd",
        "/api/cloud?tag=../../../etc",
        "/api/export?fmt=txt&tag=../latest.json",
    ],
)
def test_traversal_attempts_are_refused_and_read_nothing(
    client: TestClient, url: str, watch_opens: list[str]
) -> None:
    r = client.get(url)
    assert 400 <= r.status_code < 500
    assert "error" in r.json()
    assert "root:" not in r.text
    assert not [p for p in watch_opens if "passwd" in p or p.endswith("manifest.json")]


def test_refused_requests_are_logged_with_their_reason(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="thresher.app"):
        client.get("/api/image", params={"id": "../../etc/passwd"})
    lines = [r.getMessage() for r in caplog.records if r.name == "thresher.app"]
    assert any(
        '"GET /api/image?id=..%2F..%2Fetc%2Fpasswd" 404' in line
        and "refused: no sample '../../etc/passwd'" in line
        for line in lines
    ), lines


def test_foreign_host_and_cross_origin_posts_are_refused(client: TestClient) -> None:
    r = client.get("/api/overview", headers={"host": "evil.example:8765"})
    assert r.status_code == 400
    assert r.json() == {"error": "unexpected Host header"}
    r = client.post("/api/filter", json={}, headers={"origin": "http://evil.example"})
    assert r.status_code == 403


def test_unknown_endpoint_and_bad_parameters_get_json_4xx(client: TestClient) -> None:
    assert client.get("/api/nothing").json() == {"error": "no such endpoint: /api/nothing"}
    r = client.get("/api/samples?split=validation")
    assert r.status_code == 400
    assert r.json()["error"].startswith("bad request: split:")
    assert client.get("/api/point?index=-1").status_code == 400
    assert client.get("/api/point?index=abc").status_code == 400
    assert client.get(f"/api/point?index={TRAIN_SIZE}").status_code == 404
    assert client.get("/api/removed?reason=kept").status_code == 400
    assert client.get("/api/jobs/nope").json() == {"error": "no filter job 'nope'"}


# --- point cloud, point panel, removed grids ---------------------------------------------------
def test_cloud_is_compact_typed_arrays_matching_the_stored_result(
    client: TestClient, run_dir: Path
) -> None:
    tag = _latest(client)
    c = client.get(f"/api/cloud?tag={tag}").json()
    assert c["n"] == TRAIN_SIZE
    coords = np.frombuffer(base64.b64decode(c["coords"]), "<f4").reshape(-1, 3)
    stored = np.load(run_dir / "filter" / tag / "cloud3d.npy")
    np.testing.assert_allclose(coords, stored, rtol=1e-6)
    group = np.frombuffer(base64.b64decode(c["group"]), np.uint8)
    res = _result(run_dir, tag)
    assert [c["groups"][g] for g in group] == res.reason.tolist()
    arch = np.frombuffer(base64.b64decode(c["archetype"]), "<i2")
    items = pq.read_table(run_dir / "diagnose" / "archetypes" / "items.parquet").to_pydict()
    assert c["archetype_names"] == sorted(set(items["archetype"]))  # codes in sorted name order
    by_id = dict(zip(items["id"], items["archetype"], strict=True))
    assert [c["archetype_names"][a] for a in arch] == [by_id[i] for i in res.ids]
    # each near-duplicate points at the row of the kept image it duplicates
    rep = np.frombuffer(base64.b64decode(c["representative"]), "<i4")
    for i in np.flatnonzero(res.reason == "similar"):
        assert res.ids[rep[i]] == res.representative_id[i]
        assert res.kept[rep[i]]
    assert (rep[res.reason != "similar"] == -1).all()


def test_point_panel_shows_label_prediction_reason_representative_and_neighbours(
    client: TestClient, run_dir: Path
) -> None:
    tag = _latest(client)
    res = _result(run_dir, tag)
    i = int(np.flatnonzero(res.reason == "similar")[0])
    p = client.get(f"/api/point?tag={tag}&index={i}&neighbours=5").json()
    assert p["id"] == res.ids[i]
    assert p["reason"] == "similar"
    assert p["class"] == str(res.labels[i])
    assert p["prediction"] in range(10)
    assert p["prediction_class"] == str(p["prediction"])
    assert p["representative_id"] == res.representative_id[i]
    assert res.kept[p["representative_index"]]
    assert len(p["neighbours"]) == 5
    assert p["id"] not in [n["id"] for n in p["neighbours"]]
    sims = [n["similarity"] for n in p["neighbours"]]
    assert sims == sorted(sims, reverse=True)
    rep = client.get(f"/api/point?tag={tag}&index={p['representative_index']}").json()
    assert p["id"] in rep["duplicates"]


def test_removed_grids_by_reason_most_removable_first(client: TestClient, run_dir: Path) -> None:
    tag = _latest(client)
    res = _result(run_dir, tag)
    page = client.get(f"/api/removed?tag={tag}&reason=similar&limit=500").json()
    assert page["total"] == int(res.is_similar.sum()) == len(page["items"])
    scores = [it["score"] for it in page["items"]]
    assert scores == sorted(scores, reverse=True)
    kept = set(res.kept_ids.tolist())
    assert all(it["representative_id"] in kept for it in page["items"])
    out = client.get(f"/api/removed?tag={tag}&reason=outlier&offset=1&limit=2").json()
    assert out["total"] == int(res.is_outlier.sum())
    assert len(out["items"]) == 2


# --- diagnostics / reduction -------------------------------------------------------------------
def test_area_lists_figures_and_tables_but_not_symlinks(client: TestClient) -> None:
    names = [f["name"] for f in client.get("/api/area?area=diagnose").json()["files"]]
    assert names == [
        "accuracy/figure.png",
        "accuracy/result.json",
        "archetypes/figure.png",
        "archetypes/items.parquet",
        "archetypes/result.json",
        "figure.png",
        "summary.json",
    ]
    png = client.get("/api/area/file?area=diagnose&name=figure.png")
    assert png.headers["content-type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    t = client.get("/api/area/table?area=diagnose&name=archetypes/items.parquet").json()
    assert t["columns"][:4] == ["id", "label", "same_class_neighbours", "archetype"]
    assert t["total_rows"] == TRAIN_SIZE
    j = client.get("/api/area/table?area=diagnose&name=summary.json").json()
    assert j["data"] == [{"class": "0", "f1": 0.9}]
    assert client.get("/api/area?area=reduce").json() == {"area": "reduce", "files": []}


# --- export ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["txt", "csv", "json", "parquet", "index", "folder"])
def test_export_downloads_the_kept_list(
    client: TestClient, run_dir: Path, fmt: str, tmp_path: Path
) -> None:
    from thresher.store import read_ids

    tag = _latest(client)
    kept = _result(run_dir, tag).kept_ids.tolist()
    r = client.get(f"/api/export?tag={tag}&fmt={fmt}")
    assert r.status_code == 200
    assert r.headers["x-kept-count"] == str(len(kept))
    assert tag in r.headers["content-disposition"]
    if fmt == "folder":
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert sum(n.endswith(".png") for n in names) == len(kept)
        return
    suffix = {"index": "csv"}.get(fmt, fmt)
    path = tmp_path / f"kept.{suffix}"
    path.write_bytes(r.content)
    if fmt == "index":
        assert len(r.text.strip().splitlines()) == len(kept) + 1  # header + one row each
    else:
        assert sorted(read_ids(path).tolist()) == sorted(kept)


def test_export_refuses_unknown_format_and_tag(client: TestClient) -> None:
    assert client.get("/api/export?fmt=pickle").status_code == 400
    r = client.get("/api/export?fmt=txt&tag=nope")
    assert r.status_code == 404
    assert r.json() == {"error": "no filter result 'nope' in this run"}


# --- running a filter from the page -----------------------------------------------------------
def _wait(client: TestClient, job: dict[str, Any], seconds: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while job["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        job = client.get(f"/api/jobs/{job['id']}").json()
    return job


def test_filter_job_runs_in_background_and_compares_with_the_previous(
    client: TestClient, run_dir: Path
) -> None:
    before = _latest(client)
    r = client.post(
        "/api/filter",
        json={"outliers": 10, "similar": 5, "per_class": True, "seed": 1, "layer": "flatten"},
    )
    assert r.status_code == 202
    job = _wait(client, r.json())
    assert job["status"] == "done", job
    assert job["previous_tag"] == before
    assert job["tag"] == _latest(client) != before
    assert job["counts"]["outlier"] == 20
    assert job["counts"]["total"] == TRAIN_SIZE
    cmp = client.get(f"/api/compare?a={before}&b={job['tag']}").json()
    a = set(_result(run_dir, before).removed_ids.tolist())
    b = set(_result(run_dir, job["tag"]).removed_ids.tolist())
    assert cmp["jaccard_removed"] == pytest.approx(len(a & b) / len(a | b))
    assert cmp["removed_both"] == len(a & b)
    assert cmp["removed_only_b"] == len(b - a)
    assert cmp["b"]["counts"]["kept"] == TRAIN_SIZE - len(b)


BadPost = Callable[[TestClient], Any]


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        (lambda c: c.post("/api/filter", data={"outliers": "5"}), 400, "bad request"),
        (
            lambda c: c.post(
                "/api/filter",
                content=b"\x80\x04\x95cos\nsystem\n.",  # a pickle: never unpickled
                headers={"content-type": "application/octet-stream"},
            ),
            400,
            "bad request",
        ),
        (lambda c: c.post("/api/filter", json={"outliers": 150}), 400, "outliers"),
        (lambda c: c.post("/api/filter", json={"outliers": 60, "similar": 50}), 400, "below 100"),
        (lambda c: c.post("/api/filter", json={"__class__": "os.system"}), 400, "__class__"),
        (lambda c: c.post("/api/filter", json={"layer": "../../etc"}), 400, "layer"),
        (lambda c: c.post("/api/filter", json={"layer": "conv9"}), 400, "unknown layer"),
        (lambda c: c.post("/api/filter", json={"baseline": "random"}), 400, "keep"),
        (lambda c: c.post("/api/filter", json={"projection": "eval"}), 400, "projection"),
    ],
)
def test_bad_filter_requests_are_refused_before_any_work(
    client: TestClient, send: BadPost, status: int, message: str
) -> None:
    r = send(client)
    assert r.status_code == status, r.json()
    assert message in r.json()["error"]


# --- the command ---------------------------------------------------------------------------------
def test_cli_binds_loopback_by_default_and_warns_loudly_otherwise(
    cli: Callable[[list[str]], tuple[int, str, str]],
    run_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    code, out, err = cli(["app", str(run_dir)])
    assert code == 0
    assert calls[-1]["host"] == "127.0.0.1"
    assert calls[-1]["port"] == 8765
    assert "http://127.0.0.1:8765/" in out
    assert "WARNING" not in err
    code, out, err = cli(["app", str(run_dir), "--host", "0.0.0.0", "--port", "9000"])
    assert code == 0
    assert calls[-1]["host"] == "0.0.0.0"
    assert "WARNING" in err
    assert "no login" in err.replace("\n", " ")


def test_cli_refuses_a_folder_that_is_not_a_run(
    cli: Callable[[list[str]], tuple[int, str, str]], tmp_path: Path
) -> None:
    code, _, err = cli(["app", str(tmp_path)])
    assert code == 2
    assert "is not a Thresher run" in err


# --- label issues in the app (runs last: it adds a labels step and restores the latest filter) ---
def test_label_issues_reach_the_point_panel_the_filter_form_and_the_grids(
    client: TestClient, run_dir: Path
) -> None:
    from thresher.workflows.labels import labels_run
    from thresher.workflows.run import open_run

    before = _latest(client)
    refused = client.post("/api/filter", json={"outliers": 0, "similar": 0, "label_issues": 5})
    assert refused.status_code == 400
    assert "thresher labels" in refused.json()["error"]
    run = open_run(run_dir)
    issues = labels_run(run, folds=2, epochs=1)
    try:
        p = client.get(f"/api/point?tag={before}&index=0").json()
        verdict = p["label_issue"]
        row = int(np.flatnonzero(issues.ids == p["id"])[0])
        assert verdict["label_score"] == pytest.approx(issues.label_score[row])
        assert verdict["is_label_issue"] == bool(issues.is_label_issue[row])
        assert verdict["suggested_class"] == str(issues.suggested_label[row])
        r = client.post(
            "/api/filter",
            json={"outliers": 0, "similar": 0, "label_issues": 5, "preset": "thesis"},
        )
        job = _wait(client, r.json())
        assert job["status"] == "done", job
        assert job["counts"]["label"] == 10  # ceil(5% of 200)
        page = client.get(f"/api/removed?tag={job['tag']}&reason=label&offset=0&limit=60").json()
        assert page["total"] == 10
        worst = np.lexsort((issues.ids, -issues.label_score))[:10]  # ties go by id
        assert {it["id"] for it in page["items"]} == set(issues.ids[worst].tolist())
        bad = client.post("/api/filter", json={"preset": "nope"})
        assert bad.status_code in (400, 422)
    finally:  # the shared run as it was found: later modules compare against the report
        run.write_json("filter/latest.json", {"tag": before})
        shutil.rmtree(run_dir / "labels", ignore_errors=True)


def test_a_large_body_is_refused_before_it_is_read(client: TestClient, run_dir: Path) -> None:
    import asyncio

    from thresher.app.server import MAX_BODY_BYTES, BodyLimit

    big = b"x" * (50 << 20)
    r = client.post("/api/filter", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "request body over" in r.json()["error"]

    def chunks() -> Iterator[bytes]:
        for _ in range(800):  # 50 MB in 64 KB chunks, no Content-Length (chunked)
            yield b"x" * (64 << 10)

    r = client.post("/api/filter", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    before = _latest(client)
    ok = client.post("/api/filter", json={"outliers": 5, "similar": 5})
    assert ok.status_code == 202  # a normal request still passes
    # the filter writes into the shared run: let it finish (the next test copies the run) and
    # leave the run's latest filter as it was found
    assert _wait(client, ok.json())["status"] == "done"
    from thresher.workflows.run import open_run

    open_run(run_dir).write_json("filter/latest.json", {"tag": before})

    # the declared-length refusal reads nothing of the body (the test client sends it whole)
    reads, sent = {"n": 0}, []

    async def receive() -> dict:
        reads["n"] += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    async def never(scope: dict, receive: object, send: object) -> None:
        raise AssertionError("the app must not run")

    scope = {"type": "http", "method": "POST", "path": "/api/filter",
             "headers": [(b"content-length", str(50 << 20).encode())]}  # fmt: skip
    asyncio.run(BodyLimit(never, limit=MAX_BODY_BYTES)(scope, receive, send))
    assert reads["n"] == 0
    assert sent[0]["status"] == 413


def test_filter_jobs_join_waits_for_the_running_filter(run_dir: Path, tmp_path: Path) -> None:
    from thresher.app.jobs import FilterJobs
    from thresher.workflows.filter import FilterSettings
    from thresher.workflows.run import open_run

    shutil.copytree(run_dir, tmp_path / "run")
    jobs = FilterJobs(open_run(tmp_path / "run"))
    assert jobs.join(timeout=0)  # nothing started: nothing to wait for
    job = jobs.start(FilterSettings(outliers=0.02, similar=0.02), previous_tag=None)
    assert jobs.join(timeout=300)
    assert job.status == "done", job.error
    assert (tmp_path / "run" / "filter" / "o2-s2-pca128-auto-auto-auto-seed0").is_dir()
