#!/usr/bin/env bash
# FlashInfer on the lent H100, in a run of its own (its wheels and fbgemm's together exceed what one
# run may carry): conformance tests, then the shared harness with FlashInfer's FP8 kernels side by
# side with the torch and triton providers. Carry [".whl-fs"] (flashinfer-python 0.7.2.post1 without
# its attention/sampling sources, + apache-tvm-ffi); run from the repo root.
set -uo pipefail
OUT=${OUT:-bench/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
WHL=${WHL:-.whl-fs}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$WHL"/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation -e . -e providers/emulation -e providers/flashinfer \
  -e providers/torch -e providers/triton || exit 1
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, importlib.metadata as m; print('torch', torch.__version__, '| flashinfer-python', m.version('flashinfer-python'))"
  timeout 300 python3 -m pytest -q -m gpu tests/providers/flashinfer/test_flashinfer_gpu.py -rs \
      --junitxml="$OUT/flashinfer_junit.xml" -p no:cacheprovider 2>&1 | tail -40
  echo "pytest rc=$?"
  for nk in "4096 4096" "14336 4096"; do
    read -r n k <<<"$nk"
    timeout 100 python3 -m qlinear.cli bench --device cuda --n "$n" --k "$k" --m 1,16,128,1024,4096 --cuda-graph \
      --schemes fp8-tensor,fp8-dynamic,fp8-block --exclude 'emulation.*' --no-progress --max-time 0.15 \
      --out "$OUT" --tag "bench-cuda-flashinfer-N${n}K${k}" 2>&1 | grep -v Warning
  done
} 2>&1 | tee "$OUT/flashinfer_log.txt"
