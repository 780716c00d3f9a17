"""How much does the random baseline depend on its one draw? (issue 19's comparison)

``thresher compare`` draws one random subset per kept share (selector seed 0) and trains the
seeds' detectors on it, so the paired test against random treats that draw as fixed. This
script trains detector seed 0 on further random draws (selector seeds 1..N) at the same kept
shares and stores each as its own cell (``RUN/sweep/random-keep<k>-draw<d>/``, resumable), so
the spread over draws can be set beside the spread over training seeds and the filters' gaps.

    python benchmarks/detection_mnist/random_draws.py --keep 90 --draws 4

Prints one row per draw and the boxes per image each compared cell keeps, and writes
``benchmarks/results/detection_mnist_random_draws.json``. Run it after ``run.sh``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
RUN = REPO / "benchmarks" / "results" / "detection_mnist" / "run"
OUT = REPO / "benchmarks" / "results" / "detection_mnist_random_draws.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="90", help="comma list of kept percentages")
    parser.add_argument("--draws", type=int, default=4, help="further draws (selector seeds)")
    args = parser.parse_args()

    import numpy as np

    from thresher.store import Run
    from thresher.workflows.compare import subset_for
    from thresher.workflows.evaluate_detection import evaluate_detection_run
    from thresher.workflows.filter import percent_tag
    from thresher.workflows.run import run_dataset

    run = Run.open(RUN)
    train = run_dataset(run, "train")
    boxes = train.boxes_per_image()
    rows = []
    for keep in (float(k) / 100 for k in args.keep.split(",")):
        for draw in range(args.draws + 1):  # draw 0 is the compare cell's own subset
            ids = np.asarray(subset_for(run, "random", keep, seed=draw).kept_ids).astype(str)
            cell = f"random-keep{percent_tag(keep)}"
            if draw == 0:  # the compare cell's own draw: its seed-0 model, already trained
                stored = RUN / "compare" / f"{cell}.json"
                if not stored.is_file():
                    raise SystemExit(
                        f"{stored} is missing: run `bash benchmarks/detection_mnist/run.sh` "
                        f"(with {100 * keep:g} in KEEP) first"
                    )
                found = json.loads(stored.read_text())["result"]
                res = {m: found[m][:1] for m in ("score", "map50", "map50_95")}
            else:
                res = evaluate_detection_run(
                    run, subset_ids=ids, seeds=1, name=f"{cell}-draw{draw}"
                )
            kept = np.sort(train.indices_of(ids))
            rows.append(
                {
                    "kept": keep,
                    "draw": draw,
                    "model_seed": 0,
                    "size": int(kept.size),
                    "boxes_per_image": float(boxes[kept].mean()),
                    "score": res["score"][0],
                    "map50": res["map50"][0],
                    "map50_95": res["map50_95"][0],
                }
            )
            print(
                f"kept {100 * keep:g}%  draw {draw}  boxes/image {rows[-1]['boxes_per_image']:.3f}"
                f"  score {rows[-1]['score']:.3f}",
                flush=True,
            )
    summary = {}
    for keep in sorted({r["kept"] for r in rows}, reverse=True):
        scores = [r["score"] for r in rows if r["kept"] == keep]
        summary[f"{100 * keep:g}"] = {
            "draws": len(scores),
            "mean": statistics.fmean(scores),
            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        }
        print(f"kept {100 * keep:g}%: {len(scores)} draws, score "
              f"{summary[f'{100 * keep:g}']['mean']:.3f} ± {summary[f'{100 * keep:g}']['std']:.3f}")  # fmt: skip
    # What each compared cell keeps, in boxes: the filters change the objects per image (a
    # near-duplicate canvas tends to hold one digit), which a random subset of the same size
    # does not; the benchmark's random twin matches images, not boxes.
    kept_boxes = {"full": float(boxes.mean())}
    for keep in (0.95, 0.9, 0.8, 0.5):
        for method in ("random", "similar", "outliers", "half"):
            ids = np.asarray(subset_for(run, method, keep).kept_ids).astype(str)
            kept_boxes[f"{method}-keep{percent_tag(keep)}"] = float(
                boxes[np.sort(train.indices_of(ids))].mean()
            )
    print("boxes per image kept: " + ", ".join(f"{k} {v:.3f}" for k, v in kept_boxes.items()))
    OUT.write_text(
        json.dumps({"rows": rows, "summary": summary, "boxes_per_image": kept_boxes}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
