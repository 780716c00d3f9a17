#!/usr/bin/env bash
# The thesis's Table 1 on the full CIFAR-10 (the shared JPEG copy) with the fast CIFAR net,
# every filter and the pruning baselines at 90% and 50% kept, 3 seeds (issue 16). Resumable:
#
#   bash benchmarks/thesis_table1/run.sh        # start, or continue where it stopped
#
# Every (method, kept share, seed) model is stored in the run as soon as it is trained
# (RUN/sweep/<cell>/seed-<s>.json) and every finished cell under RUN/compare/, so a session
# that must stop kills the job and commits benchmarks/results/thesis_table1/ (the run's
# model, its training dynamics and those files; the embedding cache is rebuilt from the
# weights). Precision: fp32 by default so that any session's CPU computes the same cells
# (PRECISION=bf16 is ~3x faster on a CPU with AVX512-BF16/AMX; a GPU is faster still).
# MODEL (default cifar_airbench) and EPOCHS (default 10, its recipe's): airbench's optimiser
# settings on the fast CIFAR net; `cifar_fast` needed 20 epochs for 89.6% (docs/foundation.md).
# The run's model stores model, precision and epochs in its recipe, so a later session resumes
# with the same ones (MODEL, PRECISION and EPOCHS only matter when the run's model is trained).
# TABLE1_DIR (default benchmarks/results/thesis_table1) keeps a run on another device apart
# (benchmarks/gpu/table1.sh), RESULT_JSON names its table's file (default
# thesis_table1_cifar10_cpu.json; the GPU run's is thesis_table1_cifar10.json, the table of
# record); THRESHER and PY name the CLI and the Python to use.
set -euo pipefail
cd "$(dirname "$0")/../.."
export THRESHER_DATA=${THRESHER_DATA:-../shared/data} THRESHER_PROGRESS=${THRESHER_PROGRESS:-0}
T=${THRESHER:-.venv/bin/thresher}
PY=${PY:-.venv/bin/python}
OUT=${TABLE1_DIR:-benchmarks/results/thesis_table1}
RUN=$OUT/run
PRECISION=${PRECISION:-fp32}
SEEDS=${SEEDS:-3}
KEEP=${KEEP:-90,50}
MODEL=${MODEL:-cifar_airbench}
EPOCHS=${EPOCHS:-10}
METHODS=${METHODS:-random,uniqueness,similar,outliers,half,kcenter,herding,ssp,el2n,grand,forgetting}
mkdir -p "$OUT"
if [ ! -f "$RUN/manifest.json" ] || ! grep -q '"train"' "$RUN/manifest.json"; then
  echo "== [1/3] the run's model on the full CIFAR-10 ($MODEL, $PRECISION)"
  "$T" train cifar10 --model "$MODEL" --precision "$PRECISION" --epochs "$EPOCHS" --out "$RUN" --overwrite --json \
    > "$OUT/train.json"
fi
# Seed by seed: every method's first model before any method's second, so that a run stopped
# early still pairs every method with random (a larger --seeds trains only the new seeds).
for s in $(seq 1 "$SEEDS"); do
  echo "== [2/3] every method at $KEEP% kept, seeds 0-$((s - 1)) of $SEEDS (finished models are reused)"
  # through a .part file: a pass stopped midway leaves the last finished pass's table
  "$T" compare "$RUN" --methods "$METHODS" --keep "$KEEP" --seeds "$s" \
    --json > "$OUT/compare.json.part"
  mv "$OUT/compare.json.part" "$OUT/compare.json"
done
echo "== [3/3] the table"
"$PY" benchmarks/thesis_table1/results.py --dir "$OUT" \
  --out "${RESULT_JSON:-benchmarks/results/thesis_table1_cifar10_cpu.json}"
