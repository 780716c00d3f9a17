#!/usr/bin/env bash
# LRP-GUS at the paper's scale on the real MNIST (Table 4; issue 15), resumable across sessions.
#
#   bash benchmarks/lrp_gus_mnist/run.sh            # start, or continue where it stopped
#
# Each step is idempotent: the run directory lives in the repository
# (benchmarks/results/lrp_gus_mnist/run, small: weights of one LeNet, the search trace and the
# evaluations), the search resumes from its stored trace (`reduce --resume`), and a session
# that must stop kills it and commits the directory. Paper settings: p0 = 2000 per class,
# up 5%, down 20%, lim 40%, Nmax 1000, 15 epochs per model, cutoff = 3 points of accuracy
# drop, chosen on a validation split held out of T (Thresher's default). Precision: fp32 for
# the search and the evaluation (PRECISION=...), so that any machine can resume the trace
# with the same numerics (bf16 needs AVX512-BF16/AMX, which not every session's CPU has);
# --stop-after-cutoff 25 (the tail after the cutoff cannot move T_c).
set -euo pipefail
cd "$(dirname "$0")/../.."
export THRESHER_DATA=${THRESHER_DATA:-../shared/data} THRESHER_PROGRESS=${THRESHER_PROGRESS:-0}
T=${THRESHER:-.venv/bin/thresher}
RUN=benchmarks/results/lrp_gus_mnist/run
SEEDS=${SEEDS:-20}
FULL_SEEDS=${FULL_SEEDS:-5}
PRECISION=${PRECISION:-fp32}
mkdir -p benchmarks/results/lrp_gus_mnist
if [ ! -f "$RUN/manifest.json" ] || ! grep -q '"train"' "$RUN/manifest.json"; then
  echo "== [1/3] the run's model on the full MNIST (paper recipe, precision auto)"
  "$T" train mnist --model mnist_lenet --precision auto --out "$RUN" --overwrite --json \
    > benchmarks/results/lrp_gus_mnist/train.json
fi
echo "== [2/3] the search (resumes a stored trace)"
resume=()
[ -f "$RUN/reduce/state.json" ] && resume=(--resume)
"$T" reduce "$RUN" --p0 2000 --up 0.05 --down 0.20 --lim 0.40 --iterations 1000 \
  --stop-after-cutoff "${PATIENCE:-25}" --precision "$PRECISION" "${resume[@]}" --json > benchmarks/results/lrp_gus_mnist/reduce.json
echo "== [3/3] T_c and T_c(bal) retrained with $SEEDS seeds each, T with $FULL_SEEDS (each seed kept as it ends)"
# T (the whole 60,000, ~15 min a model in fp32 on 2 cores) is only the drop's reference; the
# paired question is T_c against T_c(bal). So both cutoffs' subsets come first with one model
# on T, then T is extended to FULL_SEEDS models (the cached subsets are not retrained).
for full in 1 "$FULL_SEEDS"; do
  "$T" evaluate "$RUN" --subset cutoff --seeds "$SEEDS" --full-seeds "$full" --precision "$PRECISION" \
    --json > benchmarks/results/lrp_gus_mnist/evaluate.json
  # the variant: the knee cutoff of the same trace against its own balanced twin (T is reused)
  "$T" evaluate "$RUN" --subset cutoff:knee --seeds "$SEEDS" --full-seeds "$full" \
    --precision "$PRECISION" --json > benchmarks/results/lrp_gus_mnist/evaluate_knee.json
done
.venv/bin/python benchmarks/lrp_gus_mnist/results.py
