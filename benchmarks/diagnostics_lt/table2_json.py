"""The IML paper's Table II of trained runs, as JSON beside the paper's row.

    python benchmarks/diagnostics_lt/table2_json.py CE=RUN LDAM-DRW=RUN [OUT.json]

Writes benchmarks/results/iml_table2_cifar10lt.json by default: per model its test accuracy
(balanced test set, flip TTA), epochs, and the mean KLD of the nearest-adversary (NNB),
Fisher-ratio (FDR) and random forecasts of the validation false positives (Alg. 1, Table II),
under each NNB weighting (``paper``: raw counts; ``class-prior``, Thresher's default), and the
share of training K-NN pairs that cross classes. Runs ``diagnose --only adversaries`` for each
weighting (the embeddings are cached in the run, so this takes seconds); the default's result
is the one left stored in the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from thresher.diagnose.adversaries import WEIGHTINGS
from thresher.workflows.diagnose import diagnose_run
from thresher.workflows.run import open_run

PAPER = {"model": "ResNet-32, 200 epochs (Dablain et al.)", "nnb": 0.5561, "fdr": 0.5157,
         "random": 4.535}  # fmt: skip
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "iml_table2_cifar10lt.json"


def main(argv: list[str]) -> None:
    pairs = [a.split("=", 1) for a in argv if "=" in a]
    out_path = Path(next((a for a in argv if "=" not in a), DEFAULT_OUT))
    models = {}
    for label, path in pairs:
        run = open_run(path)
        by_weighting = {}
        for weighting in reversed(WEIGHTINGS):  # the default last: it stays stored
            res = diagnose_run(run, only="adversaries", nnb_weighting=weighting, figures=False)
            by_weighting[weighting] = res["adversaries"]
        table = by_weighting[WEIGHTINGS[0]].table_ii
        paper = by_weighting["paper"].table_ii
        train = run.manifest["steps"]["train"]
        models[label] = {
            "run": path,
            "model": train["model"],
            "recipe": train["recipe"],
            "epochs": train["epochs"],
            "precision": train["precision"],
            "train_size": train["train_size"],
            "test_accuracy": train["test_accuracy"],
            "nnb": table["nnb"],
            "fdr": table["fdr"],
            "random": table["random"],
            "random_over_nnb": table["random_over_nnb"],
            "weighting": WEIGHTINGS[0],
            "nnb_paper_weighting": paper["nnb"],
            "random_over_nnb_paper_weighting": paper["random_over_nnb"],
            "cross_class_share": by_weighting[WEIGHTINGS[0]].cross_class_share,
        }
    result = {"models": models, "paper": PAPER}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
