#!/usr/bin/env bash
# GPU check of the reliability work (issue #18) on a CUDA machine with nvcc. From the repository root:
#     OUT=gpu_out bash scripts/gpu_check_reliability.sh          (both parts, ~6-9 min on an H100/H200)
#     OUT=gpu_out PART=build bash scripts/gpu_check_reliability.sh   (or PART=tests: one part)
# 1. the real marlin build, killed mid-nvcc, then three processes building at once into the same
#    cache: all three must load the extension (before: they waited forever on the dead build's lock);
# 2. the GPU tests of the changed code: one layer on two CUDA streams (triton split-K counters,
#    marlin workspace), the marlin build-cache tests, marlin's and triton's GPU conformance tests.
# Writes $OUT/build-race.log and $OUT/tests.log; prints a summary.
set -o pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export QLINEAR_CACHE_DIR="$OUT/cache-$(date +%s)"  # a fresh cache: the race below really compiles
unset QLINEAR_MARLIN_CACHE
export MAX_JOBS=${MAX_JOBS:-8}

python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e providers/marlin -e providers/triton || exit 1

build='import os, time; t = time.time()
from qlinear_marlin.build import load_extension
load_extension(); print(f"built/loaded in {time.time() - t:.1f} s", flush=True)'
PART=${PART:-all}
[ "$PART" = tests ] || {
  echo "== a build killed after 20 s of nvcc"
  python3 -c "import os; os.setsid()
$build" & victim=$!
  sleep 20
  kill -KILL -- -"$victim"  # its own session: python, ninja and nvcc, as when a job is killed
  wait "$victim" 2>/dev/null
  echo "   left behind: $(find "$QLINEAR_CACHE_DIR" -name lock | wc -l) torch lock file(s)"
  echo "== three processes build at once (limit 600 s each)"
  pids=()
  for i in 1 2 3; do timeout 600 python3 -c "$build" > "$OUT/build-$i.log" 2>&1 & pids+=($!); done
  ok=0
  for i in 1 2 3; do wait "${pids[$((i - 1))]}" && ok=$((ok + 1)); echo "   process $i: $(tail -1 "$OUT/build-$i.log")"; done
  echo "   $ok of 3 processes loaded the extension"
} 2>&1 | tee "$OUT/build-race.log"

[ "$PART" = build ] && exit 0
echo "== GPU tests"
# marlin builds in process_weights_after_loading now: every marlin test goes through that path
timeout 480 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE \
  tests/test_streams.py tests/providers/marlin/test_build_cache.py \
  "tests/providers/marlin/test_gpu.py" -k "not (test_conformance and not split_k) and not test_float_conformance" \
  > "$OUT/tests.log" 2>&1
echo "   streams + build cache + marlin: $(tail -1 "$OUT/tests.log")"
timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE tests/providers/triton/test_gpu.py \
  -k "kit or decode_wide or cuda_graph" > "$OUT/tests-triton.log" 2>&1
echo "   triton (kit, wide decode, CUDA graphs): $(tail -1 "$OUT/tests-triton.log")"
grep -hE "^(FAILED|ERROR)" "$OUT/tests.log" "$OUT/tests-triton.log" | head -20
