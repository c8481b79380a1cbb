#!/usr/bin/env bash
# GPU check of the torch provider on the lent H100 (torch 2.11, sm_90). Run from the repo root:
#     bash providers/torch/gpu_check.sh
# Installs qlinear + the emulation and torch providers (offline, editable), runs the gpu-marked tests
# of tests/providers/torch, then times activation quantization (eager vs torch.compile) and every
# CUDA kernel end to end at N=K=4096. Writes under $OUT (default /tmp/out): torch_gpu_tests.log,
# torch_gpu_junit.xml, torch_measure_cuda.json, torch_measure_cuda.log. Nothing to carry.
# Budget: tests <= 170 s (128 cases), measurement <= 150 s (includes triton compiles, done untimed).
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e providers/emulation -e providers/torch \
  || { echo "install failed"; exit 1; }
python3 -c "import pluggy, pytest" || { echo "pluggy/pytest missing on this machine"; exit 1; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), torch.cuda.get_device_capability())"

rc=0
timeout 170 python3 -m pytest -q -m gpu -p no:cacheprovider -rs tests/providers/torch \
  --junitxml="$OUT/torch_gpu_junit.xml" 2>&1 | tee "$OUT/torch_gpu_tests.log" | tail -40 || rc=1

timeout 150 python3 -m tools.torch_measure --device cuda --ms 1,16,128 --max-time 0.2 \
  --json "$OUT/torch_measure_cuda.json" 2>&1 | grep -v -i warn | tee "$OUT/torch_measure_cuda.log" || rc=1

echo "---- summary (card: $(python3 -c 'import torch; print(torch.cuda.get_device_name())'))"
grep -E "passed|failed|error" "$OUT/torch_gpu_tests.log" | tail -1
python3 - "$OUT/torch_measure_cuda.json" <<'PY' || true
import json, sys
r = json.load(open(sys.argv[1]))
for row in r["kernels"]:
    tag = "" if "compile" not in row else (" [compiled]" if row["compile"] else " [eager]")
    print(f"{row['kernel'] + tag:<56} M={row['m']:<4} {row['us']:9.1f} us")
PY
exit $rc
