"""The thesis's 3D view of what filtering removed and why.

Kept items green, outliers red, near-duplicates blue with a line to the item they duplicate
(and any other removal, e.g. a baseline's, grey). Interactive HTML (plotly, self-contained) and
a static PNG (matplotlib).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thresher.errors import ConfigError
from thresher.store.atomic import atomic_path, atomic_write_text

COLOURS = {"kept": "#2ca02c", "outlier": "#d62728", "similar": "#1f77b4", "other": "#7f7f7f"}


@dataclass(frozen=True)
class PointCloud:
    """3D coordinates and what happened to each point.

    Attributes:
        coords: ``(N, 3)`` positions.
        ids: ``(N,)`` sample ids.
        group: ``(N,)`` one of "kept", "outlier", "similar", "other".
        representative: ``(N,)`` index of the kept item a near-duplicate points at, else -1.
        hover: ``(N,)`` text shown on hover (id, class, reason, score).
    """

    coords: np.ndarray
    ids: np.ndarray
    group: np.ndarray
    representative: np.ndarray
    hover: np.ndarray


def build_point_cloud(
    coords: np.ndarray,
    *,
    ids: np.ndarray,
    kept: np.ndarray,
    reason: np.ndarray,
    representative_id: np.ndarray,
    score: np.ndarray | None = None,
    class_names: np.ndarray | None = None,
) -> PointCloud:
    """Assemble a :class:`PointCloud` from a filter result's per-sample columns."""
    coords = np.asarray(coords, dtype=np.float64)
    n = len(ids)
    if coords.shape != (n, 3):
        raise ConfigError(f"3D coordinates must be ({n}, 3), got {coords.shape}")
    reason = np.asarray(reason).astype(str)
    group = np.where(
        np.asarray(kept, bool),
        "kept",
        np.where(reason == "outlier", "outlier", np.where(reason == "similar", "similar", "other")),
    )
    position = {sid: i for i, sid in enumerate(np.asarray(ids).astype(str))}
    rep = np.array(
        [
            position.get(str(r), -1) if g == "similar" else -1
            for g, r in zip(group, representative_id, strict=True)
        ],
        dtype=np.int64,
    )
    parts = [f"{sid}<br>{r}" for sid, r in zip(ids, reason, strict=True)]
    if class_names is not None:
        parts = [f"{p}<br>class {c}" for p, c in zip(parts, class_names, strict=True)]
    if score is not None:
        parts = [f"{p}<br>score {s:.3f}" for p, s in zip(parts, score, strict=True)]
    return PointCloud(coords, np.asarray(ids).astype(str), group, rep, np.asarray(parts))


def to_plotly(cloud: PointCloud, *, title: str = "Thresher: what was removed and why") -> Any:
    """A plotly ``Figure``: one WebGL scatter trace per group, plus the duplicate lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name in ("kept", "outlier", "similar", "other"):
        sel = cloud.group == name
        if not sel.any():
            continue
        xyz = cloud.coords[sel]
        fig.add_trace(
            go.Scatter3d(
                x=xyz[:, 0],
                y=xyz[:, 1],
                z=xyz[:, 2],
                mode="markers",
                name=f"{name} ({int(sel.sum())})",
                marker={"size": 2 if name == "kept" else 3, "color": COLOURS[name]},
                text=cloud.hover[sel],
                hoverinfo="text",
                customdata=cloud.ids[sel],
            )
        )
    dup = np.flatnonzero(cloud.representative >= 0)
    if len(dup):
        # one trace of segments separated by None: far faster than a trace per line
        a = cloud.coords[dup]
        b = cloud.coords[cloud.representative[dup]]
        nan = np.full((len(dup), 3), np.nan)
        seg = np.stack([a, b, nan], axis=1).reshape(-1, 3)
        fig.add_trace(
            go.Scatter3d(
                x=seg[:, 0],
                y=seg[:, 1],
                z=seg[:, 2],
                mode="lines",
                name="duplicate -> kept",
                line={"color": COLOURS["similar"], "width": 1},
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title=title, legend={"itemsizing": "constant"}, margin={"l": 0, "r": 0, "b": 0}
    )
    return fig


def save_html(cloud: PointCloud, path: str | os.PathLike[str], **kw: Any) -> Path:
    """Write a self-contained interactive HTML page (plotly.js inlined: works offline)."""
    # A fixed div id (plotly's default is random): the same data give the same file.
    figure = to_plotly(cloud, **kw)
    html = figure.to_html(include_plotlyjs=True, full_html=True, div_id="thresher-cloud")
    atomic_write_text(path, html)
    return Path(path)


def save_png(cloud: PointCloud, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """A static PNG of the same view (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    for name in ("kept", "other", "similar", "outlier"):
        sel = cloud.group == name
        if sel.any():
            xyz = cloud.coords[sel]
            ax.scatter(
                xyz[:, 0],
                xyz[:, 1],
                xyz[:, 2],
                s=2 if name == "kept" else 6,
                c=COLOURS[name],
                label=f"{name} ({int(sel.sum())})",
                depthshade=False,
            )
    for i in np.flatnonzero(cloud.representative >= 0):
        j = cloud.representative[i]
        seg = cloud.coords[[i, j]]
        ax.plot(seg[:, 0], seg[:, 1], seg[:, 2], color=COLOURS["similar"], linewidth=0.4)
    ax.legend(loc="upper left", markerscale=3)
    ax.set_title("kept (green), outliers (red), near-duplicates (blue)")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
