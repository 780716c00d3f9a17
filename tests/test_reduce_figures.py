"""LRP-GUS figures write PNGs; the explain/reduce core never imports matplotlib."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from thresher.lrp_gus import Cutoff, SearchSettings
from thresher.lrp_gus.search import IterationRecord, SearchTrace

PNG = b"\x89PNG"


def small_trace() -> SearchTrace:
    recs = tuple(
        IterationRecord(
            iteration=i,
            counts=(20 - i, 20),
            size=40 - i,
            compression=0.5 + 0.01 * i,
            accuracy=0.9 - 0.01 * i,
            f1=(0.9, 0.8),
            f=(-1.0, -2.0),
            delta_f=(0.1, -0.1),
            allowed=(True, True),
            chosen=0,
            action="shrink",
            new_counts=(19 - i, 20),
            seed=i,
            seconds=0.1,
            baseline_accuracy=0.88,
            baseline_f1=(0.9, 0.9),
        )
        for i in range(6)
    )
    return SearchTrace(
        settings=SearchSettings(p0=20),
        class_sizes=(40, 40),
        records=recs,
        stop_reason="nmax",
        classes=("a", "b"),
    )


def test_search_figures_are_pngs(tmp_path: Path) -> None:
    from thresher.report.lrp_figures import plot_accuracy_compression, plot_f1_and_counts

    cut = Cutoff(
        rule="drop:0.03",
        iteration=3,
        counts=(17, 20),
        size=37,
        compression=0.53,
        accuracy=0.87,
        threshold=0.87,
        reference_accuracy=0.9,
    )
    a = plot_accuracy_compression(small_trace(), tmp_path / "a.png", cutoff=cut)
    b = plot_f1_and_counts(small_trace(), tmp_path / "b.png", cutoff=cut)
    assert a.read_bytes()[:4] == PNG
    assert b.read_bytes()[:4] == PNG


def test_class_maps_figure(tmp_path: Path) -> None:
    from thresher.report.lrp_figures import plot_class_maps

    maps = np.random.default_rng(0).normal(size=(10, 1, 28, 28))
    image = np.zeros((1, 28, 28), dtype=np.uint8)
    path = plot_class_maps(image, maps, tmp_path / "f1.png", label=3)
    assert path.read_bytes()[:4] == PNG


def test_core_does_not_import_matplotlib() -> None:
    code = (
        "import sys, torch\n"
        "import thresher.explain, thresher.lrp_gus, thresher.workflows.reduce\n"
        "import thresher.lrp_gus.scorer\n"
        "from thresher.explain import lrp_maps\n"
        "net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))\n"
        "lrp_maps(net, torch.rand(1, 1, 2, 2), 0, transform=lambda t: t)\n"
        "print(sorted(m for m in ('matplotlib', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
