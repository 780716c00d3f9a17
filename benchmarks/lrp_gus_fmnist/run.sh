#!/usr/bin/env bash
# LRP-GUS at the paper's scale on the real Fashion-MNIST (Table 5; issue 15), resumable across
# sessions exactly as ../lrp_gus_mnist/run.sh (read its header).
#
#   bash benchmarks/lrp_gus_fmnist/run.sh          # start, or continue where it stopped
#
# Paper settings: fmnist_cnn (Table 3) with Adam, batch 128, 15 epochs; p0 = 4000 per class,
# up 5%, down 20%, lim 40%, Nmax 500, cutoff = 3 points of accuracy drop chosen on a validation
# split held out of T. Measured on 2 cores (benchmarks/results/lrp_gus_fmnist_iteration.txt):
# the first iteration (|I| = 40,000, two models and LRP) is about 500 s in bf16 and 780 s in
# fp32, so the search to the paper's cutoff size (~14,400) is about 15 h bf16 / 24 h fp32 of
# CPU, and the evaluation (20 seeds) about 3 h bf16 more (docs/lrp-gus-results.md). fp32 by
# default so that every session's CPU computes the same trace (PRECISION=bf16 is 1.6x faster
# on CPUs with AVX512-BF16/AMX; a GPU does the whole run in well under an hour).
set -euo pipefail
cd "$(dirname "$0")/../.."
export THRESHER_DATA=${THRESHER_DATA:-../shared/data} THRESHER_PROGRESS=${THRESHER_PROGRESS:-0}
T=${THRESHER:-.venv/bin/thresher}
OUT=benchmarks/results/lrp_gus_fmnist
RUN=$OUT/run
SEEDS=${SEEDS:-20}
FULL_SEEDS=${FULL_SEEDS:-5}
PRECISION=${PRECISION:-fp32}
mkdir -p "$OUT"
if [ ! -f "$RUN/manifest.json" ] || ! grep -q '"train"' "$RUN/manifest.json"; then
  echo "== [1/3] the run's model on the full Fashion-MNIST (paper recipe, $PRECISION)"
  "$T" train fashion-mnist --model fmnist_cnn --precision "$PRECISION" --out "$RUN" --overwrite \
    --json > "$OUT/train.json"
fi
echo "== [2/3] the search (resumes a stored trace)"
resume=()
[ -f "$RUN/reduce/state.json" ] && resume=(--resume)
"$T" reduce "$RUN" --p0 4000 --up 0.05 --down 0.20 --lim 0.40 --iterations 500 \
  --stop-after-cutoff "${PATIENCE:-25}" --precision "$PRECISION" "${resume[@]}" --json \
  > "$OUT/reduce.json"
echo "== [3/3] T_c and T_c(bal) retrained with $SEEDS seeds each, T with $FULL_SEEDS"
for full in 1 "$FULL_SEEDS"; do
  "$T" evaluate "$RUN" --subset cutoff --seeds "$SEEDS" --full-seeds "$full" \
    --precision "$PRECISION" --json > "$OUT/evaluate.json"
  "$T" evaluate "$RUN" --subset cutoff:knee --seeds "$SEEDS" --full-seeds "$full" \
    --precision "$PRECISION" --json > "$OUT/evaluate_knee.json"
done
.venv/bin/python benchmarks/lrp_gus_mnist/results.py --dataset fmnist
