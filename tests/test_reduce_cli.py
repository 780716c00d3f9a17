"""End to end on real MNIST through the CLI: reduce, resume, explain, evaluate_cutoff."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

CliResult = tuple[int, str, str]


@pytest.mark.slow
def test_reduce_end_to_end_on_mnist(
    cli: Callable[[list[str]], CliResult], data_root: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    root = ["--root", str(data_root)]
    code, _, err = cli(
        [
            "train",
            "mnist",
            "--model",
            "mnist_lenet",
            "--out",
            str(run),
            "--limit",
            "300",
            "--epochs",
            "1",
            *root,
        ]
    )
    assert code == 0, err
    args = ["reduce", str(run), "--p0", "10", "--iterations", "3", "--epochs", "1"]
    code, out, err = cli([*args, "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert info["iterations"] == 3
    assert info["stop_reason"] == "nmax"
    cut = info["cutoff"]
    assert sum(cut["counts"]) == cut["size"]
    assert 0 < cut["compression"] < 1
    assert 0 <= info["reference_accuracy"] <= 1
    for name in (
        "trace.parquet",
        "state.json",
        "cutoff.json",
        "cutoff_ids.txt",
        "fig_accuracy_compression.png",
        "fig_f1_counts.png",
    ):
        assert (run / "reduce" / name).is_file(), name
    ids = (run / "reduce" / "cutoff_ids.txt").read_text().split()
    assert len(ids) == cut["size"]

    # a second search into the same run needs --resume or --restart
    code, _, err = cli(args)
    assert code == 2
    assert "--resume" in err
    # resuming with a larger Nmax runs only the missing iteration
    code, out, err = cli([*args[:-4], "--iterations", "4", "--epochs", "1", "--resume", "--json"])
    assert code == 0, err
    assert json.loads(out)["iterations"] == 4
    ids = (run / "reduce" / "cutoff_ids.txt").read_text().split()

    # bad input: one clear line, exit 2
    code, _, err = cli(["reduce", str(run), "--p0", "5000", "--restart"])
    assert code == 2
    assert "p0 = 5000 is larger than class" in err
    code, _, err = cli(["reduce", str(run), "--down", "1.5", "--restart"])
    assert code == 2
    assert "down must be a fraction" in err
    assert (run / "reduce" / "state.json").is_file()  # a refused restart discards nothing

    png = tmp_path / "fig1.png"
    code, out, err = cli(["explain", str(run), "--index", "3", "--out", str(png), "--json"])
    assert code == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"

    from thresher.workflows.reduce import evaluate_cutoff
    from thresher.workflows.run import open_run

    table = evaluate_cutoff(open_run(run), seeds=2, full_seeds=1, epochs=1)
    rows = table.rows()
    # fewer models on T (the largest set) where time forces it; the paired subsets keep 2
    assert (table.full.n, table.cutoff.n, table.balanced.n) == (1, 2, 2)
    assert (table.to_dict()["seeds"], table.to_dict()["full_seeds"]) == (2, 1)
    assert [r["dataset"] for r in rows] == ["T", "T_c", "T_c(bal)"]
    assert rows[1]["size"] == rows[2]["size"] == len(ids)
    assert max(rows[2]["class_counts"]) - min(rows[2]["class_counts"]) <= 1
    assert rows[0]["compression"] == 0
    diff = table.to_dict()["cutoff_versus_balanced"]
    expected = np.mean(table.cutoff.accuracy - table.balanced.accuracy)
    assert diff["n"] == 2
    assert diff["mean"] == pytest.approx(expected)
    from thresher.workflows.reduce import format_cutoff_table

    assert format_cutoff_table(table)[-1][0] == "T_c - T_c(bal)"

    # the knee cutoff of the same trace: its own subset and twin, the same (cached) T models
    code, out, err = cli(["evaluate", str(run), "--subset", "cutoff:knee", "--seeds", "2",
                          "--full-seeds", "1", "--epochs", "1", "--json"])  # fmt: skip
    assert code == 0, err
    knee = json.loads(out)
    assert knee["rule"] == "knee"
    knee_cut = json.loads((run / "reduce" / "cutoff.json").read_text())["cutoffs"]["knee"]
    assert knee["rows"][1]["class_counts"] == knee_cut["counts"]
    assert knee["rows"][1]["size"] == knee["rows"][2]["size"] == knee_cut["size"]
    assert knee["rows"][0]["accuracy_mean"] == pytest.approx(rows[0]["accuracy_mean"])
    assert (run / "reduce" / "evaluation-knee.json").is_file()
    code, _, err = cli(["evaluate", str(run), "--subset", "cutoff:elbow"])
    assert code == 2
    assert "cutoff:knee" in err
