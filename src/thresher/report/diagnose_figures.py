"""The figures of the imbalanced-data diagnostics (matplotlib, headless, imported lazily).

Every figure function takes ``items``: a sequence of ``(label, result)`` pairs, one per model,
drawn side by side (e.g. cross-entropy next to LDAM-DRW), and returns a matplotlib Figure.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thresher.errors import ConfigError

Items = Sequence[tuple[str, Any]]
#: at most this many classes per axis; above, the 5 largest and 5 smallest are shown (as the
#: paper does for CIFAR-100)
MAX_CLASSES = 12


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _shown_classes(sizes: np.ndarray) -> np.ndarray:
    """Class indices by decreasing size; the 5 largest and 5 smallest when there are many."""
    order = np.argsort(-np.asarray(sizes), kind="stable")
    if order.size > MAX_CLASSES:
        order = np.concatenate([order[:5], order[-5:]])
    return order


def _axes(n: int, *, per_model: int = 1, width: float = 6.0, height: float = 4.0) -> Any:
    plt = _plt()
    fig, axes = plt.subplots(
        per_model, n, figsize=(width * n, height * per_model), squeeze=False, layout="constrained"
    )
    return fig, axes


def accuracy_figure(items: Items) -> Any:
    """Fig. 2: bars of per-class accuracy, classes by decreasing training size, and the
    imbalance level ``n_c / n_max`` as a black line."""
    fig, axes = _axes(len(items))
    for ax, (label, res) in zip(axes[0], items, strict=True):
        order = _shown_classes(res.train_counts)
        x = np.arange(order.size)
        ax.bar(x, np.nan_to_num(res.accuracy[order]), color="tab:blue", label="accuracy")
        ax.plot(x, res.imbalance[order], color="black", marker="o", label="imbalance level")
        ax.set_xticks(x, [res.classes[c] for c in order], rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("accuracy / imbalance level")
        ax.set_title(f"{label} (max imbalance {res.max_ratio:.0f}:1)")
        ax.legend(loc="upper right", fontsize=8)
    return fig


def archetypes_figure(items: Items) -> Any:
    """Fig. 3: share of true positives per class and archetype; empty groups marked."""
    from thresher.diagnose.archetypes import ARCHETYPES

    fig, axes = _axes(len(items), width=7.0)
    colours = ("tab:green", "tab:orange", "tab:purple", "tab:red")
    for ax, (label, res) in zip(axes[0], items, strict=True):
        order = _shown_classes(res.counts.sum(axis=1))
        share = res.tp_share
        width = 0.2
        for a, name in enumerate(ARCHETYPES):
            xs = np.arange(order.size) + (a - 1.5) * width
            vals = 100 * share[order, a]
            ax.bar(xs, np.nan_to_num(vals), width, color=colours[a], label=name)
            for x, c in zip(xs, order, strict=True):
                if res.counts[c, a] == 0:
                    ax.text(x, 1, "empty", rotation=90, ha="center", va="bottom", fontsize=6)
        ax.set_xticks(np.arange(order.size), [res.classes[c] for c in order], rotation=45)
        # Head room above 100% keeps the legend off the bars.
        ax.set_ylim(0, 122)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("true positives in group (%)")
        ax.set_title(f"{label}: archetypes (K={res.k})")
        ax.legend(fontsize=8, ncols=4, loc="upper center")
    return fig


def prototypes_figure(
    label: str, res: Any, images: np.ndarray, *, classes: Sequence[int] | None = None
) -> Any:
    """Fig. 4: the medoid image of each archetype (columns) for the largest and the smallest
    class (rows, or ``classes``); empty groups say so."""
    from thresher.diagnose.archetypes import ARCHETYPES

    sizes = res.counts.sum(axis=1)
    present = np.flatnonzero(sizes > 0)
    if classes is None:
        big = present[np.argmax(sizes[present])]
        small = present[np.argmin(sizes[present])]
        classes = [int(big)] if big == small else [int(big), int(small)]
    plt = _plt()
    fig, axes = plt.subplots(
        len(classes), 4, figsize=(8, 2.2 * len(classes)), squeeze=False, layout="constrained"
    )
    for r, c in enumerate(classes):
        for a, name in enumerate(ARCHETYPES):
            ax = axes[r, a]
            ax.set_xticks([])
            ax.set_yticks([])
            if res.prototype[c, a] < 0:
                ax.text(0.5, 0.5, "empty", ha="center", va="center")
            else:
                img = np.asarray(images[c, a])
                img = img.astype(np.float64) / (255.0 if img.dtype == np.uint8 else 1.0)
                img = np.clip(img.transpose(1, 2, 0), 0, 1)
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{res.classes[c]}: {name} ({int(res.counts[c, a])})", fontsize=8)
    fig.suptitle(f"{label}: archetype prototypes (medoids)")
    return fig


def _stacked_shares(ax: Any, share: np.ndarray, classes: Sequence[str], title: str) -> None:
    plt = _plt()
    c = len(classes)
    cmap = plt.get_cmap("tab20" if c > 10 else "tab10")
    order = _shown_classes(np.zeros(c) if c <= MAX_CLASSES else -np.arange(c))
    bottom = np.zeros(order.size)
    for a in range(c):
        vals = np.nan_to_num(share[order, a])
        if not vals.any():
            continue
        ax.bar(
            np.arange(order.size),
            100 * vals,
            bottom=100 * bottom,
            color=cmap(a % 20),
            label=classes[a],
        )
        bottom += vals
    ax.set_xticks(np.arange(order.size), [classes[i] for i in order], rotation=45, ha="right")
    ax.set_ylabel("% of the reference class's total")
    ax.set_title(title, fontsize=10)


def adversaries_figure(items: Items) -> Any:
    """Fig. 5: per reference class, the adversary classes of its validation false positives
    (top row) and of its training nearest adversaries (bottom row)."""
    fig, axes = _axes(len(items), per_model=2, width=7.0)
    for j, (label, res) in enumerate(items):
        t = res.table_ii
        _stacked_shares(
            axes[0, j], res.validation_share, res.classes, f"{label}: validation false positives"
        )
        _stacked_shares(
            axes[1, j],
            res.nnb_share,
            res.classes,
            f"{label}: training nearest adversaries (KLD {t['nnb']:.3f}, FDR {t['fdr']:.3f}, "
            f"random {t['random']:.3f})",
        )
    from matplotlib.patches import Patch

    classes = items[0][1].classes
    cmap = _plt().get_cmap("tab20" if len(classes) > 10 else "tab10")
    handles = [Patch(color=cmap(a % 20), label=name) for a, name in enumerate(classes)]
    axes[0, -1].legend(
        handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="adversary"
    )
    return fig


def top_features_figure(items: Items) -> Any:
    """Fig. 6: each class's top-K features as stacked shares labelled with the feature index,
    and the class-by-class overlap matrix."""
    plt = _plt()
    fig, axes = _axes(len(items), per_model=2, width=7.0, height=4.5)
    for j, (label, res) in enumerate(items):
        ax = axes[0, j]
        cmap = plt.get_cmap("tab10")
        c = len(res.classes)
        bottom = np.zeros(c)
        for r in range(res.top_k):
            vals = np.nan_to_num(res.share[:, r])
            ax.bar(np.arange(c), vals, bottom=bottom, color=cmap(r % 10), edgecolor="white")
            for i in range(c):
                if vals[i] > 0.03 and res.indices[i, r] >= 0:
                    ax.text(
                        i,
                        bottom[i] + vals[i] / 2,
                        str(int(res.indices[i, r])),
                        ha="center",
                        va="center",
                        fontsize=6,
                    )
            bottom += vals
        ax.set_xticks(np.arange(c), res.classes, rotation=45, ha="right")
        ax.set_ylabel(f"share of the top-{res.top_k} magnitude")
        ax.set_title(f"{label}: top-{res.top_k} features (largest at the bottom)", fontsize=10)
        ax2 = axes[1, j]
        im = ax2.imshow(res.overlap, cmap="viridis", vmin=0, vmax=res.top_k)
        ax2.set_xticks(np.arange(c), res.classes, rotation=90, fontsize=7)
        ax2.set_yticks(np.arange(c), res.classes, fontsize=7)
        if c <= 15:
            for a in range(c):
                for b in range(c):
                    ax2.text(
                        b,
                        a,
                        str(int(res.overlap[a, b])),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white",
                    )
        ax2.set_title(f"{label}: shared top-{res.top_k} features", fontsize=10)
        fig.colorbar(im, ax=ax2, shrink=0.8)
    return fig


def density_figure(items: Items) -> Any:
    """Fig. 10: for every class, the density of each of the reference class's top-K features
    (stacked, one colour per feature)."""
    plt = _plt()
    fig, axes = _axes(len(items), width=7.0)
    for ax, (label, res) in zip(axes[0], items, strict=True):
        cmap = plt.get_cmap("tab10")
        c = len(res.classes)
        bottom = np.zeros(c)
        for r in range(res.top_k):
            vals = res.density[:, r]
            ax.bar(
                np.arange(c),
                vals,
                bottom=bottom,
                color=cmap(r % 10),
                label=f"FE {int(res.features[r])}",
            )
            bottom += vals
        names = [n + ("*" if i == res.reference else "") for i, n in enumerate(res.classes)]
        ax.set_xticks(np.arange(c), names, rotation=45, ha="right")
        ax.set_ylabel("items with the feature in top-K / reference size", fontsize=9)
        ax.set_title(
            f"{label}: feature density, reference {res.classes[res.reference]}*", fontsize=10
        )
        ax.legend(fontsize=6, ncols=2)
    return fig


def colours_figure(items: Items) -> Any:
    """Fig. 7: per class, the share of salient pixels in each colour bin, each bar painted in
    the bin's mean colour."""
    from thresher.diagnose.colours import COLOUR_BINS

    first = items[0][1]
    order = _shown_classes(first.images)
    plt = _plt()
    rows = len(order)
    fig, axes = plt.subplots(
        rows,
        len(items),
        figsize=(6 * len(items), 1.6 * rows + 0.6),
        squeeze=False,
        layout="constrained",
    )
    x = np.arange(len(COLOUR_BINS))
    for j, (label, res) in enumerate(items):
        share = res.share
        for r, c in enumerate(order):
            ax = axes[r, j]
            colours = np.clip(res.means[c] / 255.0, 0, 1)
            ax.bar(
                x, 100 * np.nan_to_num(share[c]), color=colours, edgecolor="black", linewidth=0.4
            )
            ax.set_ylabel(res.classes[c], fontsize=8)
            ax.set_xticks(x, COLOUR_BINS if r == rows - 1 else [], rotation=60, fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
        axes[0, j].set_title(f"{label}: top {100 * res.fraction:g}% salient pixels (%)")
    return fig


def figure_for(name: str, items: Items) -> Any:
    """The figure of analysis ``name`` (its record's ``figure``, imported now)."""
    import importlib

    from thresher.diagnose.analyses import ANALYSES

    path = ANALYSES.get(name).figure
    if not path:
        raise ConfigError(f"the {name} analysis registers no figure; give it figure='module:fn'")
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)(items)


def png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (the figure is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_figure(name: str, items: Items, path: str | os.PathLike[str]) -> Path:
    """Draw analysis ``name`` for ``items`` and write it as a PNG (atomically)."""
    from thresher.store import atomic_path

    p = Path(path)
    data = png_bytes(figure_for(name, items))
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p) as tmp:
        Path(tmp).write_bytes(data)
    return p
