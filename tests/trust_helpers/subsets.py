"""Write every kind of subset Thresher produces for one run (used twice by the determinism test:
in the test process and in a fresh interpreter)."""

from __future__ import annotations

import sys
from pathlib import Path


def write_subsets(run_dir: Path, out: Path) -> None:
    """A filter result, the random and uniqueness baselines, and the kept ids of the filter
    exported as txt, csv and parquet into ``out``."""
    from thresher.workflows.export import export_run
    from thresher.workflows.filter import FilterSettings, run_filter
    from thresher.workflows.run import open_run

    run = open_run(run_dir)
    for settings in (
        FilterSettings(baseline="random", keep=0.6, seed=3),
        FilterSettings(baseline="uniqueness", keep=0.6, seed=3),
        FilterSettings(outliers=0.1, similar=0.2, seed=3),
    ):
        run_filter(run, settings, cloud=False)
    for fmt in ("txt", "csv", "parquet"):
        export_run(run, fmt=fmt, out=out / f"kept.{fmt}")


if __name__ == "__main__":
    write_subsets(Path(sys.argv[1]), Path(sys.argv[2]))
