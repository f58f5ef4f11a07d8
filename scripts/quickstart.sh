#!/usr/bin/env bash
# One command on a fresh machine (Python >= 3.10 and pip): install gankit into .venv, train the
# `cpu` preset for a few minutes, then write its sample grid and score it with FID.
#
#   bash scripts/quickstart.sh                 # MINUTES=10 FID_N=1000 OUT=runs/quickstart
#   MINUTES=60 bash scripts/quickstart.sh      # the README's headline run
#
# Data and weights: $GANKIT_DATA_DIR / $GANKIT_INCEPTION, else downloaded into ~/.cache/gankit.
# TORCH_SPEC picks the torch build (default torch==2.13.0; a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES="${MINUTES:-10}"
FID_N="${FID_N:-1000}"
OUT="${OUT:-runs/quickstart}"

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -c "import torch" 2>/dev/null || python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
python -m pip install -q -e .

if [ -f "$OUT/config.yaml" ]; then
  gankit train --resume "$OUT" --no-progress   # continues an interrupted run; a finished one stays
else
  gankit train --preset cpu --minutes "$MINUTES" --out "$OUT" --no-progress
fi
gankit generate "$OUT" --n 64 --out "$OUT/grid.png"
gankit fid "$OUT" "cifar10:test[0:$FID_N]" --n "$FID_N"
echo "grid: $OUT/grid.png; report: gankit report $OUT -o $OUT/report.html"
