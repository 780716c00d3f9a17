"""The 3D view: colours by reason, a line from each near-duplicate to its kept item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thresher.errors import ConfigError
from thresher.report.pointcloud import build_point_cloud, save_html, save_png, to_plotly


def cloud_inputs() -> dict[str, np.ndarray]:
    return {
        "ids": np.array(["a", "b", "c", "d", "e"]),
        "kept": np.array([True, False, True, False, False]),
        "reason": np.array(["kept", "similar", "kept", "outlier", "random"]),
        "representative_id": np.array(["", "c", "", "", ""]),
    }


def test_groups_and_duplicate_links() -> None:
    cloud = build_point_cloud(np.zeros((5, 3)), **cloud_inputs())
    assert cloud.group.tolist() == ["kept", "similar", "kept", "outlier", "other"]
    assert cloud.representative.tolist() == [-1, 2, -1, -1, -1]


def test_plotly_figure_has_a_trace_per_group_and_the_lines(tmp_path: Path) -> None:
    coords = np.arange(15, dtype=float).reshape(5, 3)
    cloud = build_point_cloud(coords, **cloud_inputs(), score=np.linspace(0, 1, 5))
    fig = to_plotly(cloud)
    names = [t.name for t in fig.data]
    assert names == ["kept (2)", "outlier (1)", "similar (1)", "other (1)", "duplicate -> kept"]
    line = fig.data[-1]
    assert list(line.x[:2]) == [coords[1, 0], coords[2, 0]]  # from the duplicate to its kept item
    colours = {t.name: t.marker.color for t in fig.data[:-1]}
    assert colours["kept (2)"] == "#2ca02c"
    assert colours["outlier (1)"] == "#d62728"
    html = save_html(cloud, tmp_path / "cloud.html").read_text()
    assert "plotly" in html
    assert "outlier (1)" in html
    png = save_png(cloud, tmp_path / "cloud.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 10_000


def test_wrong_coordinate_shape() -> None:
    with pytest.raises(ConfigError, match=r"must be \(5, 3\)"):
        build_point_cloud(np.zeros((5, 2)), **cloud_inputs())
