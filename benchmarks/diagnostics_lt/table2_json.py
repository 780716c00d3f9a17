"""The IML paper's Table II from stored diagnose results, as JSON beside the paper's row.

    python benchmarks/diagnostics_lt/table2_json.py CE=RUN LDAM-DRW=RUN [OUT.json]

Writes benchmarks/results/iml_table2_cifar10lt.json by default: per model its test accuracy
(balanced test set), epochs, and the mean KLD of the nearest-adversary (NNB), Fisher-ratio
(FDR) and random forecasts of the validation false positives (Alg. 1, Table II).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from thresher.workflows.diagnose import load_result
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
        table = load_result(run, "adversaries").table_ii
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
        }
    result = {"models": models, "paper": PAPER}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
