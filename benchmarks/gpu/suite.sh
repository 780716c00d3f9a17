#!/usr/bin/env bash
# Every GPU check and GPU benchmark of the project, in one run (< 10 minutes on one H100/H200).
# Run it first whenever a session has a GPU (`device` tool): it prints its figures; copy them
# into docs/ with the date and the GPU's name.
#   bash benchmarks/gpu/suite.sh
# On the lent machine there is no .venv: env.sh runs the source tree with the carried wheels
# (docs/gpu.md says what to carry and the command to run).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=benchmarks/gpu/env.sh
source benchmarks/gpu/env.sh
export THRESHER_DATA=${THRESHER_DATA:-../shared/data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "== GPU tests (pytest -m gpu)"
"$PY" -m pytest -q -p no:cacheprovider -m gpu --timeout 300 --continue-on-collection-errors || echo "GPU TESTS FAILED"
echo "== training throughput, fp32 against auto (bf16 or fp16 autocast), on CUDA"
"$PY" benchmarks/bench_precision.py --device cuda --images 20000 --epochs 2 --repeats 2
echo "== many models at once (stacked) against one after another, on CUDA"
"$PY" benchmarks/bench_ensemble.py --device cuda --n 8 || true
echo "== the fast CIFAR net on the full CIFAR-10 copy, precision auto (CPU figure: docs/foundation.md)"
"$THRESHER" train cifar10 --model cifar_fast --root "$THRESHER_DATA" \
    --out "${TMPDIR:-/tmp}/gpu-cifar-fast" --overwrite --device cuda --json \
  | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print(f"cifar_fast: {100*r[\"test_accuracy\"]:.2f}% in {r[\"seconds\"]:.0f} s ({r[\"images_per_second\"]:.0f} img/s, {r[\"precision\"]})")' \
  || echo "CIFAR RUN FAILED"
echo "== torch.compile against eager (bf16), on the CPU of the GPU machine"
"$PY" benchmarks/bench_compile.py --steps 10 --repeats 2 || true
