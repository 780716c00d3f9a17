"""LRP-GUS figures (seed 000): Fig. 1 (one image's maps for every class), Fig. 2 (accuracy
against compression with the cutoff), Fig. 3 (per-class F1 and class counts per iteration).

matplotlib is imported inside each function (headless ``Agg``), never at module import.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thresher.store import atomic_path


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike[str], dpi: int) -> Path:
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    _plt().close(fig)
    return target


def plot_class_maps(
    image: np.ndarray,
    maps: np.ndarray,
    path: str | os.PathLike[str],
    *,
    classes: Sequence[str] = (),
    label: int | None = None,
    title: str = "",
    dpi: int = 120,
) -> Path:
    """Fig. 1: the image, then its normalised map for each class (red > 0, blue < 0, grey 0).

    ``image`` ``(C, H, W)``; ``maps`` ``(K, C', H', W')`` (channels summed for display).
    """
    plt = _plt()
    k = maps.shape[0]
    fig, axes = plt.subplots(1, k + 1, figsize=(1.6 * (k + 1), 2.0))
    img = np.asarray(image, dtype=np.float64)
    img = img / 255.0 if img.max() > 1.0 else img
    shown = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
    axes[0].imshow(shown, cmap="gray" if img.shape[0] == 1 else None)
    axes[0].set_title(title or "image", fontsize=7)
    for c in range(k):
        m = maps[c].sum(axis=0)
        lim = float(np.abs(m).max()) or 1.0
        axes[c + 1].imshow(m, cmap="bwr", vmin=-lim, vmax=lim)
        name = classes[c] if c < len(classes) else str(c)
        mark = " (true)" if label == c else ""
        axes[c + 1].set_title(f"y={name}{mark}", fontsize=7)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path, dpi)


def plot_accuracy_compression(
    trace: Any, path: str | os.PathLike[str], *, cutoff: Any = None, dpi: int = 120
) -> Path:
    """Fig. 2a: accuracy against compression per iteration, the random balanced subsets of
    the same size, the accuracy line of the drop rule and the cutoff point."""
    plt = _plt()
    r = 100 * trace.column("compression")
    acc = 100 * trace.column("accuracy")
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(r, acc, "-o", ms=2, lw=0.8, label="LRP-GUS subset")
    base = trace.column("baseline_accuracy").astype(np.float64)
    if np.isfinite(base).any():
        ax.plot(r, 100 * base, "x", ms=3, color="grey", label="random balanced, same size")
    if cutoff is not None:
        if np.isfinite(cutoff.threshold):
            ax.axhline(100 * cutoff.threshold, color="black", lw=1, label=f"{cutoff.rule} line")
        ax.plot(
            [100 * cutoff.compression],
            [100 * cutoff.accuracy],
            "*",
            ms=12,
            color="red",
            label=f"cutoff (iteration {cutoff.iteration})",
        )
    ax.set_xlabel("compression rate r (%)")
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path, dpi)


def plot_f1_and_counts(
    trace: Any, path: str | os.PathLike[str], *, cutoff: Any = None, dpi: int = 120
) -> Path:
    """Fig. 2b/3b: per-class F1 (top) and class counts (bottom) per iteration, with the
    cutoff iteration as a vertical line."""
    plt = _plt()
    it = trace.column("iteration")
    f1 = np.array([r.f1 for r in trace.records], dtype=np.float64)
    counts = np.array([r.counts for r in trace.records], dtype=np.float64)
    names = list(trace.classes) or [str(c) for c in range(counts.shape[1])]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    cmap = plt.get_cmap("tab10")
    for c in range(counts.shape[1]):
        top.plot(it, 100 * f1[:, c], lw=0.8, color=cmap(c % 10), label=names[c])
        bottom.plot(it, counts[:, c], lw=0.8, color=cmap(c % 10))
    if cutoff is not None:
        for ax in (top, bottom):
            ax.axvline(cutoff.iteration, color="black", lw=1)
    top.set_ylabel("F1 (%)")
    bottom.set_ylabel("images per class")
    bottom.set_xlabel("iteration")
    top.legend(fontsize=6, ncol=5)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return _save(fig, path, dpi)


def save_search_figures(run: Any, trace: Any, result: Any = None) -> list[Path]:
    """Write ``RUN/reduce/fig_accuracy_compression.png`` and ``RUN/reduce/fig_f1_counts.png``."""
    cutoff = getattr(result, "cutoff", None)
    return [
        plot_accuracy_compression(
            trace, run.file("reduce/fig_accuracy_compression.png"), cutoff=cutoff
        ),
        plot_f1_and_counts(trace, run.file("reduce/fig_f1_counts.png"), cutoff=cutoff),
    ]
