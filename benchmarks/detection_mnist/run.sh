#!/usr/bin/env bash
# The thesis's detection comparison (seed 002, section 5.2, Fig. 15/17) on the MNIST detection
# canvases (issue 19): a det_tiny RetinaNet trained on all 2,000 training canvases, its
# head-input embeddings filtered, and detectors retrained on random, similar, outliers and half
# at 95, 90, 80 and 50% kept, 3 seeds each, scored on the 500 test canvases with the thesis's
# score = 0.1 mAP50 + 0.9 mAP50-95. Resumable:
#
#   bash benchmarks/detection_mnist/run.sh        # start, or continue where it stopped
#
# Every (cell, seed) detector is stored as it ends (RUN/sweep/<cell>/seed-<s>.json) and every
# finished cell under RUN/compare/; a session that must stop kills the job and commits
# benchmarks/results/detection_mnist/. fp32, so any session's CPU computes the same cells.
set -euo pipefail
cd "$(dirname "$0")/../.."
export THRESHER_DATA=${THRESHER_DATA:-../shared/data} THRESHER_PROGRESS=${THRESHER_PROGRESS:-0}
T=${THRESHER:-.venv/bin/thresher}
OUT=benchmarks/results/detection_mnist
RUN=$OUT/run
SEEDS=${SEEDS:-3}
KEEP=${KEEP:-95,90,80,50}
METHODS=${METHODS:-random,similar,outliers,half}
mkdir -p "$OUT"
if [ ! -f "$RUN/manifest.json" ] || ! grep -q '"train"' "$RUN/manifest.json"; then
  echo "== [1/3] det_tiny on the 2,000 MNIST detection canvases"
  "$T" train mnist-detection --model det_tiny --precision fp32 --out "$RUN" --overwrite --json \
    > "$OUT/train.json"
fi
echo "== [2/3] $METHODS at $KEEP% kept, $SEEDS seeds (cached cells are reused)"
"$T" compare "$RUN" --methods "$METHODS" --keep "$KEEP" --seeds "$SEEDS" --json \
  > "$OUT/compare.json"
echo "== [3/3] the table and the figure"
.venv/bin/python benchmarks/detection_mnist/results.py
