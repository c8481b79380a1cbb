#!/usr/bin/env bash
# GPU check of the marlin provider on the lent H100. Run from the repository root:
#     bash providers/marlin/gpu_check.sh
# install (editable, offline) -> build the one extension (timed) -> tests (3 parallel groups) -> benchmark.
# Writes under $OUT (7 files): build.log, tests-{mp,float,rest}.log, bench.log, marlin_bench.json,
# sanitize.log (compute-sanitizer memcheck + racecheck over every kernel path); prints the table last.
set -o pipefail
OUT=${OUT:-/tmp/marlin_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export QLINEAR_MARLIN_CACHE=${QLINEAR_MARLIN_CACHE:-/tmp/qlinear_marlin_cache}  # kept while the machine is warm
export MAX_JOBS=${MAX_JOBS:-8}

python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e providers/marlin || exit 1
python3 -c "import torch; print(torch.cuda.get_device_name(), '| torch', torch.__version__, '| cuda', torch.version.cuda)"

echo "== build (one extension: binding.cpp + mp_kernels_int.cu + mp_kernels_fp.cu)"
timeout 400 python3 - <<'PY' 2>&1 | tail -60 | tee "$OUT/build.log"
import time
t = time.time()
from qlinear_marlin.build import cache_dir, load_extension, source_key, _arch_flags
load_extension()
print(f"extension built/loaded in {time.time() - t:.1f} s into {cache_dir(source_key(_arch_flags()[1]))}")
PY
grep -q "built/loaded" "$OUT/build.log" || { echo "BUILD FAILED (see build.log above)"; exit 1; }

echo "== tests"
T=tests/providers/marlin
# CUDA_LAUNCH_BLOCKING: a kernel fault is reported at its own launch, not at a later sync
PYTEST="env CUDA_LAUNCH_BLOCKING=1 timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40"
$PYTEST $T/test_gpu.py -k "test_conformance and not split_k and not dense" > "$OUT/tests-mp.log" 2>&1 &
p1=$!
$PYTEST $T/test_gpu.py -k "test_float_" > "$OUT/tests-float.log" 2>&1 &
p2=$!
$PYTEST $T -k "not (test_conformance and not split_k and not dense) and not test_float_" > "$OUT/tests-rest.log" 2>&1 &
p3=$!
wait $p1 $p2 $p3
for g in mp float rest; do
  echo "-- tests-$g: $(tail -1 "$OUT/tests-$g.log")"
  grep -E "^(FAILED|ERROR)" "$OUT/tests-$g.log" | head -15
done

echo "== bench"
timeout 240 python3 -m tools.marlin_bench --out "$OUT/marlin_bench.json" 2>&1 | tee "$OUT/bench.log"

SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SAN" ]; then
  for tool in memcheck racecheck; do  # racecheck: shared-memory hazards of the per-warp cp.async pipelines
    echo "== compute-sanitizer --tool $tool (small layers, every path)" | tee -a "$OUT/sanitize.log"
    timeout 75 "$SAN" --tool $tool --error-exitcode 9 \
      python3 -m tools.marlin_sanitize > "$OUT/sanitize-$tool.tmp" 2>&1
    rc=$?
    head -c 200000 "$OUT/sanitize-$tool.tmp" >> "$OUT/sanitize.log"; rm -f "$OUT/sanitize-$tool.tmp"
    echo "   exit $rc : $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|OK: every path" "$OUT/sanitize.log" | tail -2 | tr '\n' ' ')"
  done
else
  echo "== compute-sanitizer not found: skipped"
fi

echo "== table (again)"
tail -n 16 "$OUT/bench.log"
