#!/usr/bin/env bash
# Tensor-parallel check + decode-step timing on a 2-GPU machine (the lent nvidia-h200-x2), from the
# repo root, one command:
#     bash bench/tp_gpu_check.sh
# Installs qlinear + the emulation, torch and triton providers offline (editable; marlin too when
# QLINEAR_TP_MARLIN=1, which JIT-builds its CUDA code on first use: minutes), keeps NVLink
# multicast off, then runs bench/tp_step.py:
#   1. every scheme on the Llama-3-8B linears (qkv, gate_up column-parallel; o, down row-parallel),
#      2 GPUs vs 1 GPU and vs the float64 reference, M = 16 (the same check as the gpu-marked
#      tests/test_parallel_gpu.py);
#   2. the decode step (4 blocks' linears, CUDA graphs, all-reduce included) at M = 1, 16 for W4A16
#      and FP8 on 1 vs 2 GPUs with NCCL, then again with a one-shot symmetric-memory all-reduce
#      (experimental; its own processes, so a failure there keeps the NCCL table).
# Writes under $OUT (default /tmp/out): tp_step.json, tp_step.log. Budget: <= 200 s + 90 s.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
pkgs=(-e . -e providers/emulation -e providers/torch -e providers/triton)
[ "${QLINEAR_TP_MARLIN:-0}" = 1 ] && pkgs+=(-e providers/marlin)
python3 -m pip install -q --no-index --no-deps --no-build-isolation "${pkgs[@]}" || { echo "install failed"; exit 1; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.device_count(), 'x', torch.cuda.get_device_name())"
timeout 300 python3 bench/tp_step.py --ms 1,16 --schemes w4a16-g128,fp8-dynamic --layers 4 --reps 50 \
  --allreduce nccl,symm --timeout 200 --json "$OUT/tp_step.json" 2>&1 | grep -v -i warn | tee "$OUT/tp_step.log"
exit "${PIPESTATUS[0]}"
