#!/usr/bin/env bash
# Tensor-parallel check + decode-step timing on a 2-GPU machine (the lent nvidia-h200-x2), from the
# repo root:
#     bash bench/tp_gpu_check.sh
# Installs qlinear + the emulation, torch and triton providers offline (editable; marlin too when
# QLINEAR_TP_MARLIN=1, which JIT-builds on first use), keeps NVLink multicast off, then runs
#   1. the gpu-marked TP tests (every scheme on the Llama-3-8B linears, 2 GPUs vs 1), and
#   2. bench/tp_step.py --no-check: the decode step at M = 1, 16 for W4A16 and FP8 on 1 vs 2 GPUs.
# Writes under $OUT (default /tmp/out): tp_gpu_tests.log, tp_gpu_junit.xml, tp_step.json, tp_step.log.
# Budget: tests <= 170 s, timing <= 120 s.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
pkgs=(-e . -e providers/emulation -e providers/torch -e providers/triton)
[ "${QLINEAR_TP_MARLIN:-0}" = 1 ] && pkgs+=(-e providers/marlin)
python3 -m pip install -q --no-index --no-deps --no-build-isolation "${pkgs[@]}" || { echo "install failed"; exit 1; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.device_count(), 'x', torch.cuda.get_device_name())"

rc=0
timeout 170 python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/test_parallel_gpu.py \
  --junitxml="$OUT/tp_gpu_junit.xml" 2>&1 | tee "$OUT/tp_gpu_tests.log" | tail -30 || rc=1
timeout 120 python3 bench/tp_step.py --no-check --ms 1,16 --schemes w4a16-g128,fp8-dynamic --layers 4 --reps 50 \
  --timeout 115 --json "$OUT/tp_step.json" 2>&1 | grep -v -i warn | tee "$OUT/tp_step.log" || rc=1
echo "---- summary"
grep -E "passed|failed|error" "$OUT/tp_gpu_tests.log" | tail -1
exit $rc
