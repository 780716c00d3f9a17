#!/usr/bin/env bash
# The IML paper's Table II on CIFAR-10-LT (100:1) with the fast CIFAR net (issue 16):
# cross-entropy and LDAM-DRW models, then `thresher diagnose` and the JSON table.
#
#   EPOCHS=16 bash benchmarks/diagnostics_lt/iml_table2.sh [OUT]     # OUT: runs/iml
#
# Each step is skipped when its output exists, so a stopped job continues where it was.
# fp32 by default (PRECISION=...); ~25 min per model on 2 AVX2 cores at 16 epochs; 40 epochs
# in bf16 on one AVX512-BF16 core: ~23-25 min per model (docs/diagnostics-results.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
export THRESHER_DATA=${THRESHER_DATA:-../shared/data}
T=${THRESHER:-.venv/bin/thresher}
OUT=${1:-runs/iml}
EPOCHS=${EPOCHS:-16}
PRECISION=${PRECISION:-fp32}
mkdir -p "$OUT"
if [ ! -f "$OUT/ce/manifest.json" ] || ! grep -q '"train"' "$OUT/ce/manifest.json"; then
  echo "== CE: cifar_fast on CIFAR-10-LT, $EPOCHS epochs"
  "$T" train cifar10 --model cifar_fast --longtail 100 --epochs "$EPOCHS" \
    --precision "$PRECISION" --out "$OUT/ce" --overwrite --json > "$OUT/ce_train.json"
fi
if [ ! -f "$OUT/ldam/manifest.json" ] || ! grep -q '"train"' "$OUT/ldam/manifest.json"; then
  echo "== LDAM-DRW: the same recipe with loss=ldam on the cosine head, DRW over the last ~20% of the epochs"
  PRECISION=$PRECISION .venv/bin/python benchmarks/diagnostics_lt/train_ldam.py \
    cifar10 cifar_fast cifar-fast "$OUT/ldam" "$EPOCHS" > "$OUT/ldam_train.txt"
fi
for m in ce ldam; do
  if [ ! -f "$OUT/$m/diagnose/adversaries/result.json" ]; then
    echo "== diagnose $m"
    "$T" diagnose "$OUT/$m" --no-figures > "$OUT/${m}_diagnose.txt"
  fi
done
.venv/bin/python benchmarks/diagnostics_lt/table2_json.py CE="$OUT/ce" LDAM-DRW="$OUT/ldam"
