# Source this to run the project from its source tree on a machine without its virtual
# environment (the lent GPU machine: python3 there holds torch; nothing can be downloaded).
# It installs the wheels carried in .whl/ (faiss-cpu, hdbscan, ... : see docs/gpu.md), puts
# src/ on the path and writes a `thresher` command; it exports PY and THRESHER. With a
# working .venv it only points PY and THRESHER at it.
#   source benchmarks/gpu/env.sh
if [ -x .venv/bin/thresher ] && .venv/bin/python -c "import torch" 2>/dev/null; then
  export PY="$PWD/.venv/bin/python" THRESHER="$PWD/.venv/bin/thresher"
else
  # one wheel at a time: one that does not fit this Python leaves the others installed
  for wheel in .whl/*.whl; do
    [ -e "$wheel" ] || continue
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/thresher-site "$wheel" || echo "env.sh: $wheel did not install" >&2
  done
  export PYTHONPATH="$PWD/src:/tmp/thresher-site${PYTHONPATH:+:$PYTHONPATH}"
  PY="$(command -v python3)"
  mkdir -p /tmp/thresher-bin
  printf '#!/bin/sh\nexec "%s" -c "import sys; from thresher.cli import main; sys.exit(main())" "$@"\n' \
    "$PY" > /tmp/thresher-bin/thresher
  chmod +x /tmp/thresher-bin/thresher
  export PY THRESHER=/tmp/thresher-bin/thresher
fi
