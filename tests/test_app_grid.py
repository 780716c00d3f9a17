"""The app's sample grid, image view, tags and report-style sections over a real run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app tests need the app extra (thresher[app])")
from fastapi.testclient import TestClient

from thresher.app.server import create_app
from thresher.workflows.curation import TAGS_FILE

TRAIN_SIZE = 200


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_app_api import build_app_run

    return build_app_run(tmp_path_factory)


@pytest.fixture(scope="module")
def client(run_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(run_dir)) as c:
        yield c


@pytest.fixture
def clean_tags(run_dir: Path) -> Iterator[Path]:
    """Tests that tag images leave the shared run as they found it."""
    (run_dir / TAGS_FILE).unlink(missing_ok=True)
    yield run_dir
    (run_dir / TAGS_FILE).unlink(missing_ok=True)


def _result(run_dir: Path) -> Any:
    from thresher.workflows.filter import load_filter
    from thresher.workflows.run import open_run

    return load_filter(open_run(run_dir))


def _items(client: TestClient, **params: Any) -> dict[str, Any]:
    r = client.get("/api/items", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


# --- the grid ---------------------------------------------------------------------------------
def test_grid_pages_through_every_image_of_the_split(client: TestClient) -> None:
    first = _items(client, limit=64)
    second = _items(client, limit=64, offset=64)
    assert first["total"] == first["size"] == TRAIN_SIZE
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in second["items"]]
    assert len(set(ids)) == 128
    rest = _items(client, limit=500, offset=128)
    assert len(rest["items"]) == TRAIN_SIZE - 128
    row = first["items"][0]
    for key in ("id", "class", "prediction_class", "reason", "score", "archetype", "tags"):
        assert key in row
    assert first["choices"]["classes"] == [str(d) for d in range(10)]
    assert set(first["choices"]["reasons"]) == {"kept", "outlier", "similar"}


def test_grid_filters_by_class_reason_archetype_and_score_range(
    client: TestClient, run_dir: Path
) -> None:
    res = _result(run_dir)
    page = _items(client, label=3, limit=500)
    assert page["total"] == int((res.labels == 3).sum())
    assert {i["class"] for i in page["items"]} == {"3"}
    out = _items(client, reason="outlier", limit=500)
    assert out["total"] == int((res.reason == "outlier").sum()) > 0
    assert {i["reason"] for i in out["items"]} == {"outlier"}
    arch = _items(client, archetype="safe", limit=500)
    assert arch["total"] > 0
    assert {i["archetype"] for i in arch["items"]} == {"safe"}
    band = _items(client, score_key="score", min_score=0.2, max_score=0.8, limit=500)
    expected = int(((res.score >= 0.2) & (res.score <= 0.8)).sum())
    assert band["total"] == expected
    assert all(0.2 <= i["score"] <= 0.8 for i in band["items"])
    both = _items(client, label=3, reason="kept", limit=500)
    assert both["total"] == int(((res.labels == 3) & (res.reason == "kept")).sum())


def test_grid_sorts_by_any_score_and_searches_ids(client: TestClient, run_dir: Path) -> None:
    res = _result(run_dir)
    desc = _items(client, sort="score", order="desc", limit=500)["items"]
    scores = [i["score"] for i in desc]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(float(res.score.max()))
    asc = _items(client, sort="outlier_score", order="asc", limit=500)["items"]
    values = [i["outlier_score"] for i in asc]
    assert values == sorted(values)
    by_id = _items(client, sort="id", order="desc", limit=5)["items"]
    assert [i["id"] for i in by_id] == sorted(map(str, res.ids), reverse=True)[:5]
    wanted = str(res.ids[17])
    found = _items(client, q=wanted.split("/")[-1].upper())  # case-insensitive piece of an id
    assert wanted in [i["id"] for i in found["items"]]
    assert all(wanted.split("/")[-1] in i["id"] for i in found["items"])
    neighbours = _items(client, sort="same_class_neighbours", order="asc", limit=500)["items"]
    same = [i["same_class_neighbours"] for i in neighbours]
    assert same == sorted(same)


def test_grid_refuses_unknown_sort_keys_and_filter_results(client: TestClient) -> None:
    r = client.get("/api/items?sort=secret")
    assert r.status_code == 400
    assert "sort" in r.json()["error"]
    r = client.get("/api/items?tag=nope")
    assert r.status_code == 404
    assert "nope" in r.json()["error"]
    r = client.get("/api/items?limit=100000")
    assert r.status_code == 400


def test_grid_of_the_test_split_has_labels_but_no_filter_columns(client: TestClient) -> None:
    page = _items(client, split="test", limit=10)
    assert page["total"] == page["size"] > 0
    assert all(i["reason"] is None and i["class"] is not None for i in page["items"])


# --- the image view ---------------------------------------------------------------------------
def test_item_joins_label_prediction_reason_duplicates_archetype_and_neighbours(
    client: TestClient, run_dir: Path
) -> None:
    res = _result(run_dir)
    i = int(np.flatnonzero(res.reason == "similar")[0])
    p = client.get("/api/item", params={"id": str(res.ids[i])}).json()
    assert p["id"] == res.ids[i]
    assert p["class"] == str(res.labels[i])
    assert len(p["probabilities"]) == 10
    assert sum(p["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert p["confidence"] == pytest.approx(max(p["probabilities"]))
    assert p["prediction_class"] == str(int(np.argmax(p["probabilities"])))
    assert p["filter"]["reason"] == "similar"
    rep = p["filter"]["representative_id"]
    assert rep == res.representative_id[i]
    # the kept image lists this one among the images removed as its duplicates
    q = client.get("/api/item", params={"id": rep}).json()
    assert q["filter"]["reason"] == "kept"
    assert p["id"] in q["filter"]["duplicates"]
    assert q["filter"]["duplicates_total"] == int((res.representative_id == rep).sum())
    assert p["archetype"] in ("safe", "border", "rare", "outlier")
    assert 0 <= p["same_class_neighbours"] <= p["archetype_k"] == 5
    assert len(p["neighbours"]) == 8
    sims = [nb["similarity"] for nb in p["neighbours"]]
    assert sims == sorted(sims, reverse=True)
    assert p["id"] not in [nb["id"] for nb in p["neighbours"]]


def test_relevance_maps_are_png_per_class_and_differ_between_classes(
    client: TestClient, run_dir: Path
) -> None:
    import io

    from PIL import Image

    sid = str(_result(run_dir).ids[0])
    a = client.get("/api/relevance", params={"id": sid, "target": 0})
    b = client.get("/api/relevance", params={"id": sid, "target": 7})
    assert a.status_code == b.status_code == 200
    assert a.headers["content-type"] == "image/png"
    img_a = np.asarray(Image.open(io.BytesIO(a.content)))
    img_b = np.asarray(Image.open(io.BytesIO(b.content)))
    assert img_a.shape == img_b.shape == (28, 28, 3)  # the model's input size (digits are 8x8)
    assert not np.array_equal(img_a, img_b)
    assert client.get("/api/relevance", params={"id": sid, "target": 99}).status_code == 404
    assert client.get("/api/relevance", params={"id": "nope", "target": 0}).status_code == 404


def test_relevance_colours_red_for_and_blue_against() -> None:
    from thresher.app.state import relevance_rgb

    rgb = relevance_rgb(np.array([[2.0, 0.0, -1.0]]))
    assert rgb[:, 0, 0].tolist() == [255, 0, 0]  # the largest positive: pure red
    assert rgb[:, 0, 1].tolist() == [255, 255, 255]  # none: white
    assert rgb[:, 0, 2].tolist() == [128, 128, 255]  # half the scale against: light blue


# --- tags -------------------------------------------------------------------------------------
def _tag(
    client: TestClient, ids: list[str], add: list[str], remove: list[str] | None = None
) -> Any:
    return client.post("/api/tags", json={"ids": ids, "add": add, "remove": remove or []})


def test_tags_are_stored_in_the_run_and_keep_and_remove_exclude_each_other(
    client: TestClient, clean_tags: Path
) -> None:
    from thresher.workflows.curation import load_tags
    from thresher.workflows.run import open_run

    ids = [i["id"] for i in _items(client, limit=3)["items"]]
    r = _tag(client, ids[:2], ["keep", "odd stroke"])
    assert r.status_code == 200, r.text
    assert r.json()["counts"] == {"keep": 2, "odd stroke": 2}
    _tag(client, ids[:1], ["remove"])  # replaces keep, the free-text tag stays
    tags = load_tags(open_run(clean_tags))
    assert tags[ids[0]] == ("odd stroke", "remove")
    assert tags[ids[1]] == ("keep", "odd stroke")
    _tag(client, ids[1:2], [], ["keep", "odd stroke"])
    assert ids[1] not in load_tags(open_run(clean_tags))
    page = _items(client, has_tag="remove", limit=500)
    assert [i["id"] for i in page["items"]] == [ids[0]]
    assert page["items"][0]["tags"] == ["odd stroke", "remove"]
    assert _items(client, has_tag="untagged")["total"] == TRAIN_SIZE - 1
    assert client.get("/api/tags").json()["tagged"] == 1


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"ids": ["digits/nope"], "add": ["keep"]}, "not in the run's training split"),
        ({"ids": [], "add": ["keep"]}, "ids"),
        ({"ids": ["x"], "add": ["<script>"]}, "bad tag"),
        ({"ids": ["x"], "add": ["keep"], "extra": 1}, "extra"),
        ({"ids": ["x"]}, "say which tags"),
    ],
)
def test_bad_tag_requests_are_refused_before_anything_is_written(
    client: TestClient, clean_tags: Path, body: dict[str, Any], needle: str
) -> None:
    if body.get("ids") == ["x"]:
        body["ids"] = [_items(client, limit=1)["items"][0]["id"]]
    r = client.post("/api/tags", json=body)
    assert r.status_code == 400
    assert needle in r.json()["error"]
    assert not (clean_tags / TAGS_FILE).exists()


def test_tags_need_json_from_this_origin(client: TestClient, clean_tags: Path) -> None:
    sid = _items(client, limit=1)["items"][0]["id"]
    r = client.post("/api/tags", content=f"ids={sid}&add=keep", headers={
        "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code in (400, 415)
    r = client.post(
        "/api/tags", json={"ids": [sid], "add": ["keep"]}, headers={"Origin": "http://evil.test"}
    )
    assert r.status_code == 403
    assert not (clean_tags / TAGS_FILE).exists()


def test_export_applies_keep_and_remove_tags_unless_told_not_to(
    client: TestClient, clean_tags: Path, run_dir: Path
) -> None:
    res = _result(run_dir)
    kept = [str(i) for i in res.ids[res.kept]]
    dropped = str(res.ids[~res.kept][0])
    _tag(client, kept[:3], ["remove"])
    _tag(client, [dropped], ["keep"])
    r = client.get("/api/export?fmt=txt")
    ids = r.text.split()
    assert len(ids) == len(kept) - 3 + 1 == int(r.headers["x-kept-count"])
    assert dropped in ids
    assert not set(kept[:3]) & set(ids)
    raw = client.get("/api/export?fmt=txt&apply_tags=false").text.split()
    assert raw == kept
    c = client.get("/api/curated").json()
    assert c == {"count": len(ids), "base_kept": len(kept), "removed_by_tag": 3,
                 "kept_by_tag": 1, "filter": res_tag(run_dir)}  # fmt: skip


def res_tag(run_dir: Path) -> str:
    import json

    return str(json.loads((run_dir / "filter" / "latest.json").read_text())["tag"])


# --- diagnostics and reduction as the report draws them ---------------------------------------
def test_diagnostics_sections_are_the_reports(client: TestClient) -> None:
    from thresher.report.html import sections

    got = client.get("/api/sections?area=diagnose").json()["sections"]
    assert [s["id"] for s in got] == [sid for sid, _, _ in sections()]
    by_id = {s["id"]: s for s in got}
    assert by_id["accuracy"]["heading"] == "Per-class accuracy and imbalance"
    assert by_id["accuracy"]["tables"][0]["rows"][0][0] == "class"
    assert by_id["colours"]["missing"] == "colours"
    png = client.get("/api/sections/figure?area=diagnose&section=archetypes&index=0")
    assert png.status_code == 200
    assert png.content[:4] == b"\x89PNG"
    import io

    from PIL import Image

    assert Image.open(io.BytesIO(png.content)).width >= 500  # drawn at a readable size
    assert client.get("/api/sections/figure?area=diagnose&section=colours").status_code == 404
    assert client.get("/api/sections?area=reduce").json()["sections"] == []
