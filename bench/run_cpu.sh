#!/usr/bin/env bash
# CPU benchmark (Llama-8B-like shapes): K = N = 4096, M in {1, 8, 32, 128}; bf16 F.linear (always),
# and every usable emulation / torch / zentorch kernel for W8A8 int8 (dynamic per-token), W8A16
# (per channel) and W4A16 (group 128); then FP8 (dynamic per-token, per-channel weights) at
# M in {1, 8} only: torch's CPU FP8 GEMM is emulated and takes seconds per call at M = 1 already
# (over a minute at M = 128 on a 2-core box). Writes bench/out/bench-cpu-N4096K4096.{json,png}
# and bench/out/bench-cpu-fp8-N4096K4096.{json,png}.
#
#   bash bench/run_cpu.sh                          # ~5-10 minutes on 2 idle cores
#   bash bench/run_cpu.sh --exclude 'emulation.*'  # extra args go to `qlinear bench`
#   OUT=/tmp/res THREADS=2 bash bench/run_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
# zentorch kernels gate themselves to AMD Zen CPUs; on another x86 CPU (an Intel CI box) let them run
# so the comparison still has them. Set QLINEAR_ZENTORCH_ANY_CPU=0 to keep the gate.
export QLINEAR_ZENTORCH_ANY_CPU=${QLINEAR_ZENTORCH_ANY_CPU:-1}
if command -v qlinear >/dev/null 2>&1; then Q=(qlinear); else Q=(python3 -m qlinear.cli); fi
common=(bench --device cpu --n 4096 --k 4096 --out "$OUT" ${THREADS:+--threads "$THREADS"})
"${Q[@]}" "${common[@]}" --m 1,8,32,128 --schemes int8-dynamic,w8a16-ch,w4a16-g128 "$@"
"${Q[@]}" "${common[@]}" --m 1,8 --schemes fp8-dynamic --tag bench-cpu-fp8-N4096K4096 --max-time 0.5 "$@"
