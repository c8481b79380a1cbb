#!/usr/bin/env bash
# GPU check of the fbgemm provider on the lent H100 (run from the repo root, carry: [".whl"]).
# .whl holds fbgemm-gpu-genai 1.6.0 (the torch 2.11 build the machine has) + nvidia-cutlass
# (fill it with `bash ../shared/gpu/wheels.sh` on the dev machine). Prints the pytest summary,
# then the shared harness's benchmark of the fbgemm kernels beside bf16 (`qlinear bench`); writes
# $OUT/fbgemm_log.txt, $OUT/fbgemm_junit.xml and the bench JSON + PNG.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-deps --no-build-isolation -e . -e providers/emulation -e providers/fbgemm || exit 1
{
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c "import torch, importlib.metadata as m; print('torch', torch.__version__, '| fbgemm-gpu-genai', m.version('fbgemm-gpu-genai'))"
  python3 -m pytest -q -m gpu tests/providers/fbgemm -rs --junitxml="$OUT/fbgemm_junit.xml" -p no:cacheprovider
  echo "pytest rc=$?"
  python3 -m qlinear.cli bench --device cuda --kernels 'fbgemm.*' --m 1,16,128,1024 \
      --schemes fp8-dynamic,fp8-tensor,fp8-block,int8-dynamic,w4a16-g128 --no-progress --out "$OUT"
} 2>&1 | tee "$OUT/fbgemm_log.txt"
