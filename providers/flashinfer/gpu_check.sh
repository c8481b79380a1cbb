#!/usr/bin/env bash
# GPU check of the flashinfer provider on the lent H100 (run from the repo root, carry: [".whl-fi"]).
# .whl-fi holds flashinfer-python 0.7.2.post1 + apache-tvm-ffi (`bash ../shared/gpu/wheels.sh`).
# FlashInfer JIT-compiles on first use: bmm_fp8 ~34 s, fp8_blockscale_gemm_sm90 ~100 s, the FP4
# interleave op of the layout cross-check ~1 min; the build cache stays in ~/.cache/flashinfer while
# the machine is warm. Budget ~7 minutes cold. Prints the pytest summary (conformance), the bench
# table, then the layout cross-check against flashinfer's own functions; writes $OUT/flashinfer_*.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-fi/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation -e . -e providers/emulation -e providers/flashinfer || exit 1
# Only emulation competes for the large-M block-FP8 delegate here, so a failure is this provider's own.
# QLINEAR_FI_OTHERS="triton torch" also installs those providers, to see the core pick a faster delegate.
for p in ${QLINEAR_FI_OTHERS:-}; do [ -f "providers/$p/pyproject.toml" ] && python3 -m pip install -q --no-deps --no-build-isolation -e "providers/$p"; done
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, importlib.metadata as m; print('torch', torch.__version__, '| flashinfer-python', m.version('flashinfer-python'))"
  timeout 330 python3 -m pytest -q -m gpu tests/providers/flashinfer/test_flashinfer_gpu.py -rs -s \
      --junitxml="$OUT/flashinfer_junit.xml" -p no:cacheprovider
  echo "pytest rc=$?"
  timeout 120 python3 -m qlinear.cli bench --device cuda --kernels 'flashinfer.*' --m 1,16,128,1024 \
      --schemes fp8-tensor,fp8-block --no-progress --out "$OUT"
  timeout 200 python3 -m pytest -q -m gpu tests/providers/flashinfer/test_flashinfer_gpu_layouts.py -rs -p no:cacheprovider
  echo "layout cross-check rc=$?"
} 2>&1 | tee "$OUT/flashinfer_log.txt"
