#!/usr/bin/env bash
# Full-data accuracy of the paper nets at fp32 and at precision=auto (bf16 + channels-last on
# CPUs with AVX512-BF16/AMX), the papers' recipes (15 epochs), one seed each. Writes
# benchmarks/results/precision_<data>_<precision>.json (thresher train --json).
#   THRESHER_DATA=../shared/data bash benchmarks/precision_accuracy.sh [mnist fashion-mnist]
set -euo pipefail
cd "$(dirname "$0")/.."
T=${THRESHER:-.venv/bin/thresher}
declare -A MODEL=([mnist]=mnist_lenet [fashion-mnist]=fmnist_cnn)
for data in ${@:-mnist fashion-mnist}; do
  for precision in fp32 auto; do
    out=$(mktemp -d)
    "$T" train "$data" --model "${MODEL[$data]}" --precision "$precision" --out "$out/run" --json \
      > "benchmarks/results/precision_${data}_${precision}.json"
    rm -rf "$out"
  done
done
