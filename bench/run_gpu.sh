#!/usr/bin/env bash
# GPU benchmark (Llama-8B-like shapes): N x K = 4096 x 4096 and 14336 x 4096, M in
# {1, 16, 128, 1024, 4096}; bf16 F.linear (always) and every usable kernel of every family, eager
# and under CUDA-graph replay. Run from the repository root on the GPU machine; writes JSON + PNG
# under $OUT (default bench/out). With SETUP=1 it first installs the carried wheels (.whl/) and the
# project with every provider, offline.
#
#   SETUP=1 bash bench/run_gpu.sh                  # on the lent H100, carry [".whl"]
#   bash bench/run_gpu.sh --kernels 'triton.*'     # extra args go to `qlinear bench`
set -euo pipefail
EXTRA=("$@")
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
PY=${PYTHON:-python3}
[ "${SETUP:-0}" = 1 ] && source bench/gpu_setup.sh
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
# Emulation is left out: it is the numeric reference, not a speed candidate, and at these shapes it
# only costs device time. Add --exclude '' to the arguments to time it too.
for nk in "4096 4096" "14336 4096"; do
    read -r n k <<<"$nk"
    $PY -m qlinear.cli bench --device cuda --n "$n" --k "$k" --m 1,16,128,1024,4096 --cuda-graph \
        --exclude 'emulation.*' --no-progress --out "$OUT" "${EXTRA[@]}" 2>&1 | tee "$OUT/bench-cuda-N${n}K${k}.log"
done
