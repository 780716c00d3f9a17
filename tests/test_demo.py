"""The main job, end to end: `thresher demo` on the embedded default (scikit-learn digits)."""

from __future__ import annotations

import json
from pathlib import Path

from thresher.demo import run_demo
from thresher.store import read_ids


def test_demo_trains_embeds_and_evaluates(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "demo"
    # 5 epochs instead of the recipe's 15 keep the test quick; `make demo` runs all 15
    figures = run_demo(out, seeds=1, epochs=5, echo=lines.append)
    # the paper net learns real digits well; half the data costs a little accuracy
    assert float(figures["test_accuracy"]) > 0.9  # type: ignore[arg-type]
    assert float(figures["full_mean_accuracy"]) > 0.9  # type: ignore[arg-type]
    assert float(figures["half_mean_accuracy"]) > 0.8  # type: ignore[arg-type]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"train", "embed"} <= set(manifest["steps"])
    assert len(read_ids(out / "subsets" / "random-50.txt")) == 1438 // 2
    assert (out / "evaluate" / "full.parquet").is_file()
    assert (out / "evaluate" / "random-50.parquet").is_file()
    assert any("test accuracy" in line for line in lines)
    assert any(f"Outputs in {out}" in line for line in lines)
    # diagnostics: every training image gets exactly one archetype; the report is written
    assert sum(figures["archetypes"].values()) == 1438  # type: ignore[attr-defined]
    assert (out / "diagnose" / "report.html").is_file()
    # the LRP-GUS step searched and chose a cutoff subset, stored for `thresher app`
    assert figures["reduce_iterations"] == 6
    assert 0 < int(figures["reduce_cutoff_size"]) <= 600  # type: ignore[call-overload]
    assert (out / "reduce" / "trace.parquet").is_file()
    assert lines[-1] == f"Open it all in the browser: thresher app {out}"
