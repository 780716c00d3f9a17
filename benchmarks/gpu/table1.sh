#!/usr/bin/env bash
# The thesis's Table 1 (issue 16) on a lent GPU, inside a deadline: the run lives in
# benchmarks/results/thesis_table1_gpu/ (apart from the CPU run; its own model, trained here).
# Order: the GPU tests (correctness of the CUDA paths first), then the thesis's filters against
# random at 90% kept, 3 seeds (the table's question), then every method, the pruning baselines
# too, at 90% and 50%. Every finished model is cached in the run, so a later GPU session goes on
# where this one stopped. Whatever finished is packed into $OUT/table1_gpu.tgz (the device
# tool brings $OUT back); unpack it over the repository and commit it.
#   DEADLINE_S=500 bash benchmarks/gpu/table1.sh
# Needs: the CIFAR-10 copy under THRESHER_DATA and, without .venv, the wheels in .whl/
# (docs/gpu.md says how to carry both).
set -uo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benchmarks/gpu/env.sh
source benchmarks/gpu/env.sh
export THRESHER_DATA=${THRESHER_DATA:-../shared/data} THRESHER_PROGRESS=${THRESHER_PROGRESS:-0}
DIR=${TABLE1_DIR:-benchmarks/results/thesis_table1_gpu}
PRECISION=${PRECISION:-bf16}
END=$(($(date +%s) + ${DEADLINE_S:-500}))
left() { echo $((END - $(date +%s))); }
mkdir -p "$DIR"
# what results.py records as the machine
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
} | tee "$DIR/machine.txt"

echo "== GPU tests (pytest -m gpu)"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu --timeout 100 \
  --continue-on-collection-errors || echo "GPU TESTS FAILED"

table() {  # KEEP METHODS: one run.sh inside what is left of the deadline
  local t
  t=$(left)
  if [ "$t" -lt 30 ]; then
    echo "== deadline reached: KEEP=$1 METHODS=$2 not started"
    return 1
  fi
  echo "== Table 1, KEEP=$1 METHODS=$2, $t s left"
  TABLE1_DIR=$DIR KEEP=$1 METHODS=$2 SEEDS=${SEEDS:-3} PRECISION=$PRECISION \
    RESULT_JSON=benchmarks/results/thesis_table1_cifar10.json \
    timeout "$t" bash benchmarks/thesis_table1/run.sh
}
table 90 random,similar,uniqueness,outliers,half &&
  table 90,50 random,uniqueness,similar,outliers,half,kcenter,herding,ssp,el2n,grand,forgetting
echo "== Table 1 stopped with rc=$?; finished cells:"
ls "$DIR/run/sweep" 2>/dev/null | while read -r cell; do echo "  $cell: $(ls "$DIR/run/sweep/$cell" | tr '\n' ' ')"; done
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/table1_gpu.tgz" --exclude=embeddings "$DIR"
  ls -la "$OUT"
fi
