#!/usr/bin/env bash
# GPU check of the fbgemm provider on the lent H100 (run from the repo root, carry: [".whl"]).
# .whl holds fbgemm-gpu-genai 1.6.0 (the torch 2.11 build the machine has) + nvidia-cutlass
# (fill it with `bash ../shared/gpu/wheels.sh` on the dev machine). Prints the pytest summary,
# then a benchmark table; writes $OUT/fbgemm_log.txt, $OUT/fbgemm_junit.xml, $OUT/fbgemm_bench.json.
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
  python3 providers/fbgemm/bench_gpu.py
} 2>&1 | tee "$OUT/fbgemm_log.txt"
