"""Side-by-side figures of diagnosed runs for docs/figures/diagnostics/.

Usage: python figures.py OUTDIR PREFIX NAME,NAME,... LABEL=RUN [LABEL=RUN ...]
"""

import sys
from pathlib import Path

from thresher.report.diagnose_figures import figure_for, png_bytes
from thresher.workflows.diagnose import load_result
from thresher.workflows.run import open_run

out, prefix, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
models = [(a.split("=", 1)[0], open_run(a.split("=", 1)[1])) for a in sys.argv[4:]]
out.mkdir(parents=True, exist_ok=True)
for name in names:
    items = [(label, load_result(run, name)) for label, run in models]
    # the overlap matrices make the top-features figure the largest: a lower dpi keeps < 200 KB
    dpi = 85 if name == "top_features" else 100
    p = out / f"{prefix}-{name}.png"
    p.write_bytes(png_bytes(figure_for(name, items), dpi=dpi))
    print(p, p.stat().st_size)
