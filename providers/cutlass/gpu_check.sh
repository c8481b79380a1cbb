#!/usr/bin/env bash
# GPU check of the cutlass provider on an H100/H200 (cc 9.0). Run from the repository root, with the
# nvidia-cutlass wheel carried in .whl/ (carry: [".whl"]):
#     bash providers/cutlass/gpu_check.sh               # everything: W8A8, W4A16, W4A16 bench (~20 min)
#     bash providers/cutlass/gpu_check.sh w8a8          # the W8A8 extension (FP8 / INT8 / block FP8): ~8 min
#     bash providers/cutlass/gpu_check.sh w4a16         # W4A16: build (+ marlin's), tests, memcheck: ~6 min
#     bash providers/cutlass/gpu_check.sh w4a16-bench   # W4A16 bench only (reuses the warm build caches): ~6 min
#     bash providers/cutlass/gpu_check.sh w4a8          # W4A8: build, tests, memcheck, per-layer and decode-step bench: ~8 min
#     bash providers/cutlass/gpu_check.sh float         # NVFP4 / MXFP4 / MXFP8 weight-only: build (+ marlin's), tests, memcheck, decode step: ~9 min
# (each part fits one 10-minute device call; the build caches live under /tmp while the machine is warm)
# Per part: install (offline) -> build the extension once (ninja, per-family times from .ninja_log) ->
# GPU tests (parallel groups) beside compute-sanitizer memcheck over every path -> side-by-side bench
# (CUDA graphs). Writes under $OUT: build.log, tests-{fp8,int8,rest}.log, sanitize.log, bench.log,
# cutlass_bench.json (W8A8); w4a16-build.log, marlin-build.log, tests-w4a16-{kit,rest}.log,
# w4a16-sanitize.log, w4a16-bench.log, cutlass_w4a16_bench.json (W4A16). Ends with the compact tables.
# Budget: ~8 min per part (build ~2 min with 16 cores, tests and sanitizer ~2-3 min together, bench ~3 min).
set -o pipefail
OUT=${OUT:-/tmp/cutlass_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export QLINEAR_CUTLASS_CACHE=${QLINEAR_CUTLASS_CACHE:-/tmp/qlinear_cutlass_cache}  # kept while the machine is warm
export QLINEAR_MARLIN_CACHE=${QLINEAR_MARLIN_CACHE:-/tmp/qlinear_marlin_cache}  # the W4A16 bench's marlin column
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
PART=${1:-all}
case "$PART" in all|w8a8|w4a16|w4a16-bench|w4a8|float) ;; *) echo "usage: $0 [all|w8a8|w4a16|w4a16-bench|w4a8|float]"; exit 2;; esac

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvidia_cutlass-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
EXTRA=()
if [ "$PART" != w8a8 ] && [ "$PART" != w4a8 ]; then  # the W4A16 bench and the float-code step compare with marlin (and fbgemm where its wheel travels)
  EXTRA+=(-e providers/marlin)
  if compgen -G ".whl/fbgemm_gpu*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/fbgemm_gpu*.whl && EXTRA+=(-e providers/fbgemm)
  fi
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e providers/emulation -e providers/torch \
  -e providers/triton -e providers/cutlass "${EXTRA[@]}" || exit 1
python3 -c "import torch; print(torch.cuda.get_device_name(), '| torch', torch.__version__, '| cuda', torch.version.cuda)"
nvcc --version | tail -1

w8a8_part() {
  echo "== build (binding + quantizers + dispatch + 16 GEMM instantiations, MAX_JOBS=$MAX_JOBS)"
  timeout 420 python3 -m tools.cutlass_build_times w8a8 2>&1 | tail -40 | tee "$OUT/build.log"
  grep -q "built/loaded" "$OUT/build.log" || { echo "BUILD FAILED (see build.log above)"; return 1; }

  echo "== tests (3 parallel groups) + compute-sanitizer memcheck over every path, side by side"
  T=tests/providers/cutlass
  PYTEST="env CUDA_LAUNCH_BLOCKING=1 timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40"
  $PYTEST $T/test_cutlass_gpu.py -k "CutlassFP8 or fp8" > "$OUT/tests-fp8.log" 2>&1 &
  p1=$!
  $PYTEST $T/test_cutlass_gpu.py -k "not (CutlassFP8 or fp8)" > "$OUT/tests-int8.log" 2>&1 &
  p2=$!
  QLINEAR_CUTLASS_COMPILE_CHECK=0 $PYTEST $T -k "not test_cutlass_gpu and not w4a16 and not w4a8" > "$OUT/tests-rest.log" 2>&1 &  # the build above compiled everything
  p3=$!
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$SAN" ]; then
    timeout 300 "$SAN" --tool memcheck --error-exitcode 9 python3 -m tools.cutlass_sanitize > "$OUT/sanitize.log" 2>&1 &
    p4=$!
  fi
  wait $p1 $p2 $p3
  for g in fp8 int8 rest; do
    echo "-- tests-$g: $(tail -1 "$OUT/tests-$g.log")"
    grep -E "^(FAILED|ERROR)" "$OUT/tests-$g.log" | head -15
  done
  if [ -n "${p4:-}" ]; then
    wait $p4
    rc=$?
    echo "-- compute-sanitizer memcheck: exit $rc : $(grep -E "ERROR SUMMARY|OK: every path" "$OUT/sanitize.log" | tail -2 | tr '\n' ' ')"
    grep -E "Invalid|out of bounds|misaligned" "$OUT/sanitize.log" | head -5
  else
    echo "-- compute-sanitizer not found: skipped"
  fi

  echo "== bench"
  timeout 240 python3 -m tools.cutlass_bench --out "$OUT/cutlass_bench.json" 2>&1 | tee "$OUT/bench.log"
}

w4a16_part() {
  echo "== W4A16 / W8A16: build their extensions (per activation dtype: binding + dispatch + 14 / 7 mixed-input GEMMs, MAX_JOBS=$MAX_JOBS); marlin's beside it"
  # marlin's extension is only needed by the bench: built in the background (its own cache) meanwhile
  (timeout 600 env MAX_JOBS=4 python3 -c 'import time; t = time.time()
from qlinear_marlin.build import load_extension
load_extension(); print(f"marlin built/loaded in {time.time() - t:.1f} s")' > "$OUT/marlin-build.log" 2>&1) &
  local pm=$!
  local ext
  for ext in w4a16-bf16 w4a16-fp16 w8a16-bf16 w8a16-fp16; do  # one extension per (code width, activation dtype)
    timeout 300 python3 -m tools.cutlass_build_times $ext > "$OUT/$ext-build.log" 2>&1; tail -20 "$OUT/$ext-build.log"
    grep -q "built/loaded" "$OUT/$ext-build.log" || { echo "$ext BUILD FAILED (see $ext-build.log above)"; wait $pm; return 1; }
  done

  echo "== W4A16 tests (2 parallel groups) + compute-sanitizer memcheck over every W4A16 path, side by side"
  local T=tests/providers/cutlass
  local PYTEST="env CUDA_LAUNCH_BLOCKING=1 timeout 420 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40"
  $PYTEST $T/test_cutlass_w4a16_gpu.py -k "test_conformance" > "$OUT/tests-w4a16-kit.log" 2>&1 &
  local q1=$!
  QLINEAR_CUTLASS_COMPILE_CHECK=0 $PYTEST $T/test_cutlass_w4a16_gpu.py $T/test_cutlass_w4a16.py -k "not test_conformance or stand_in" \
    > "$OUT/tests-w4a16-rest.log" 2>&1 &
  local q2=$!
  local SAN q3=
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$SAN" ]; then
    timeout 420 "$SAN" --tool memcheck --error-exitcode 9 python3 -m tools.cutlass_w4a16_sanitize > "$OUT/w4a16-sanitize.log" 2>&1 &
    q3=$!
  fi
  wait $q1 $q2
  for g in kit rest; do
    echo "-- tests-w4a16-$g: $(tail -1 "$OUT/tests-w4a16-$g.log")"
    grep -E "^(FAILED|ERROR)" "$OUT/tests-w4a16-$g.log" | head -15
  done
  if [ -n "$q3" ]; then
    wait $q3
    echo "-- compute-sanitizer memcheck (W4A16): exit $? : $(grep -E "ERROR SUMMARY|OK: every path" "$OUT/w4a16-sanitize.log" | tail -2 | tr '\n' ' ')"
    grep -E "Invalid|out of bounds|misaligned" "$OUT/w4a16-sanitize.log" | head -5
  else
    echo "-- compute-sanitizer not found: skipped"
  fi
  wait $pm
  echo "-- marlin build: $(tail -1 "$OUT/marlin-build.log")"
}

w4a16_bench() {
  echo "== W4A16 bench: bf16 F.linear vs cutlass / triton / marlin / fbgemm W4A16, M = 64 .. 4096, Llama-3-8B shapes"
  timeout 540 python3 -m tools.cutlass_w4a16_bench --out "$OUT/cutlass_w4a16_bench.json" 2>&1 | tee "$OUT/w4a16-bench.log"
}

w4a8_part() {
  echo "== W4A8: build its extension (binding + quantizer + dispatch + 6 int4 x FP8 GEMMs, MAX_JOBS=$MAX_JOBS)"
  timeout 300 python3 -m tools.cutlass_build_times w4a8 2>&1 | tail -20 | tee "$OUT/w4a8-build.log"
  grep -q "built/loaded" "$OUT/w4a8-build.log" || { echo "W4A8 BUILD FAILED (see w4a8-build.log above)"; return 1; }
  echo "== W4A8 tests + compute-sanitizer memcheck over every W4A8 path, side by side"
  local T=tests/providers/cutlass
  local PYTEST="env CUDA_LAUNCH_BLOCKING=1 timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40"
  QLINEAR_CUTLASS_COMPILE_CHECK=0 $PYTEST $T/test_cutlass_w4a8_gpu.py $T/test_cutlass_w4a8.py > "$OUT/tests-w4a8.log" 2>&1 &
  local q1=$! SAN q2=
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$SAN" ]; then
    timeout 300 "$SAN" --tool memcheck --error-exitcode 9 python3 -m tools.cutlass_w4a8_sanitize > "$OUT/w4a8-sanitize.log" 2>&1 &
    q2=$!
  fi
  wait $q1
  echo "-- tests-w4a8: $(tail -1 "$OUT/tests-w4a8.log")"
  grep -E "^(FAILED|ERROR)" "$OUT/tests-w4a8.log" | head -15
  if [ -n "$q2" ]; then
    wait $q2
    echo "-- compute-sanitizer memcheck (W4A8): exit $? : $(grep -E "ERROR SUMMARY|OK: every path" "$OUT/w4a8-sanitize.log" | tail -2 | tr '\n' ' ')"
    grep -E "Invalid|out of bounds|misaligned" "$OUT/w4a8-sanitize.log" | head -5
  fi
  echo "== W4A8 bench: bf16 F.linear vs cutlass W4A8 / FP8 / W4A16 per layer, then the decode step"
  timeout 240 python3 -m tools.cutlass_w4a8_bench --kinds ${W4A8_BENCH_KINDS:-w4a8} --out "$OUT/cutlass_w4a8_bench.json" 2>&1 | tee "$OUT/w4a8-bench.log"
  timeout 240 python3 -m qlinear bench --model llama3-8b --schemes w4a8 --m 1,16,128,512,1024,2048,4096 \
    --out "$OUT/w4a8-step" --no-plot --no-progress 2>&1 | tee "$OUT/w4a8-step.log" | tail -20
}

float_part() {
  echo "== float-code weight-only: build the FP4 and MXFP8 extensions (the W4A16 / W8A16 GEMMs on E2M1 / E4M3, MAX_JOBS=$MAX_JOBS) and marlin's"
  : > "$OUT/float-build.log"
  for e in fp4-bf16 fp4-fp16 mxfp8-bf16; do
    timeout 300 python3 -m tools.cutlass_build_times $e 2>&1 | tail -3 | tee -a "$OUT/float-build.log"
  done
  [ "$(grep -c "built/loaded" "$OUT/float-build.log")" = 3 ] || { echo "BUILD FAILED (see float-build.log above)"; return 1; }
  python3 -c "from qlinear_marlin.build import load_extension; load_extension()" > "$OUT/marlin-build.log" 2>&1
  echo "== tests, then compute-sanitizer memcheck over every tile and every code"
  local T=tests/providers/cutlass
  QLINEAR_CUTLASS_COMPILE_CHECK=0 timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40 \
    $T/test_cutlass_float_weights_gpu.py $T/test_cutlass_float_weights.py > "$OUT/tests-float.log" 2>&1
  echo "-- tests-float: $(tail -1 "$OUT/tests-float.log")"
  local SAN
  SAN=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  if [ -x "$SAN" ]; then
    timeout 300 "$SAN" --tool memcheck --error-exitcode 9 python3 -m pytest -q -p no:cacheprovider \
      $T/test_cutlass_float_weights_gpu.py -k "every_tile_config or every_code or every_e4m3 or decode_splits" > "$OUT/float-memcheck.log" 2>&1
    echo "-- compute-sanitizer memcheck (float codes): exit $? : $(grep -E "ERROR SUMMARY" "$OUT/float-memcheck.log" | tail -1)"
  fi
  echo "== decode step (8 Llama-3-8B layers, CUDA graph), default regime"
  timeout 300 python3 -m qlinear bench --model llama3-8b --schemes nvfp4,mxfp4,mxfp8 --m 1,16,64,128,256,2048 --cuda-graph \
    --out "$OUT/float-step" --no-plot --no-progress 2>&1 | tee "$OUT/float-step.log" | tail -14
}

rc=0
case "$PART" in all|w8a8) w8a8_part || rc=1;; esac
case "$PART" in all|w4a16) w4a16_part || rc=1;; esac
case "$PART" in all|w4a16-bench) w4a16_bench || rc=1;; esac
case "$PART" in all|w4a8) w4a8_part || rc=1;; esac
case "$PART" in all|float) float_part || rc=1;; esac
echo "== summary ($PART)"
case "$PART" in all|w8a8) grep -E "^(family|extension)" "$OUT/build.log" 2>/dev/null;; esac
case "$PART" in all|w4a16) grep -E "^(family|extension)" "$OUT/w4a16-build.log" 2>/dev/null
  echo "marlin: $(tail -1 "$OUT/marlin-build.log" 2>/dev/null)";; esac
for f in "$OUT"/tests-*.log; do [ -f "$f" ] && echo "$(basename "$f"): $(tail -1 "$f")"; done
case "$PART" in all|w4a16-bench) [ -f "$OUT/w4a16-bench.log" ] && sed -n '/# summary/,$p' "$OUT/w4a16-bench.log";; esac
case "$PART" in all|w4a8) grep -E "^(family|extension)" "$OUT/w4a8-build.log" 2>/dev/null
  [ -f "$OUT/w4a8-bench.log" ] && sed -n '/# summary/,$p' "$OUT/w4a8-bench.log";; esac
exit $rc
