#!/usr/bin/env bash
# Full-data accuracy of the paper nets at fp32 and at precision=auto (bf16 + channels-last on
# CPUs with AVX512-BF16/AMX), the papers' recipes (15 epochs). Writes
# benchmarks/results/precision_<data>_<precision>[_s<seed>].json (thresher train --json); seed 0
# keeps the plain name. Finished files are skipped, so an interrupted run continues.
#   THRESHER_DATA=../shared/data bash benchmarks/precision_accuracy.sh [mnist fashion-mnist]
#   SEEDS="1 2" bash benchmarks/precision_accuracy.sh fashion-mnist
# Then: python benchmarks/precision_table.py
set -euo pipefail
cd "$(dirname "$0")/.."
T=${THRESHER:-.venv/bin/thresher}
declare -A MODEL=([mnist]=mnist_lenet [fashion-mnist]=fmnist_cnn)
for data in ${@:-mnist fashion-mnist}; do
  for seed in ${SEEDS:-0}; do
    for precision in fp32 auto; do
      suffix=$([ "$seed" = 0 ] && echo "" || echo "_s$seed")
      dest="benchmarks/results/precision_${data}_${precision}${suffix}.json"
      [ -s "$dest" ] && continue
      out=$(mktemp -d)
      "$T" train "$data" --model "${MODEL[$data]}" --precision "$precision" --seed "$seed" \
        --out "$out/run" --json > "$dest.part"
      mv "$dest.part" "$dest"
      rm -rf "$out"
    done
  done
done
