#!/usr/bin/env bash
# The triton provider on the lent H100: install, test compiled, benchmark. Run from the repo root:
#     bash providers/triton/gpu_check.sh
# Writes under $OUT: log (everything below), tests-*.log, warm.log, bench_triton.json.
# Triton JIT is the slow part (~1 s per kernel variant, single-threaded), so the test groups and a
# compile-only pass of the benchmark run as parallel processes sharing one Triton cache; the timed
# benchmark (tools/triton_bench.py) runs afterwards, alone on the GPU, with everything already compiled.
set -o pipefail
OUT=${OUT:-/tmp/qlinear_triton_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/triton_cache}  # survives while the machine is warm
unset TRITON_INTERPRET
LOG="$OUT/log"
python3 -m pip install -q --no-deps --no-build-isolation -e . -e providers/emulation -e providers/triton || exit 1
python3 -c "import torch, triton; print(torch.cuda.get_device_name(), '| torch', torch.__version__, '| triton', triton.__version__)" | tee "$LOG"

t0=$(date +%s)
T=tests/providers/triton
PYTEST="timeout 240 python3 -m pytest -q -p no:cacheprovider --maxfail=20"
declare -A GROUPS_=(
  [w4a16]="$T/test_gpu.py -k W4A16"
  [w4a16swap]="$T/test_w4a16_swap_gpu.py"
  [int8]="$T/test_gpu.py -k Int8"
  [fp8]="$T/test_gpu.py -k FP8ScaledMM"
  [fp8block]="$T/test_gpu.py -k Fp8Block"
  [fp4]="$T/test_fp4_gpu.py"
  [cpu_and_quant]="$T/test_quant.py $T/test_layout.py $T/test_gates.py $T/test_kernels_cpu.py $T/test_decode.py $T/test_configs.py"
)
pids=()
for g in "${!GROUPS_[@]}"; do
  $PYTEST ${GROUPS_[$g]} > "$OUT/tests-$g.log" 2>&1 &
  pids+=("$!:$g")
done
timeout 240 python3 -m tools.triton_bench --warm-only > "$OUT/warm.log" 2>&1 &
warm=$!
rc=0
for p in "${pids[@]}"; do
  wait "${p%%:*}"; r=$?
  g=${p#*:}
  echo "== tests $g: rc=$r  $(tail -n 1 "$OUT/tests-$g.log")" | tee -a "$LOG"
  [ $r -ne 0 ] && { rc=1; grep -E "^(FAILED|ERROR)|Error|error:" "$OUT/tests-$g.log" | head -n 20 | tee -a "$LOG"; }
done
wait $warm; echo "== warm-up compile: rc=$? $(tail -n 1 "$OUT/warm.log")" | tee -a "$LOG"
echo "tests + compile: $(( $(date +%s) - t0 )) s" | tee -a "$LOG"

t1=$(date +%s)
timeout 330 python3 -m tools.triton_bench --out "$OUT" ${BENCH_ARGS:-} 2>&1 | tee -a "$LOG"
echo "bench: rc=$? in $(( $(date +%s) - t1 )) s" | tee -a "$LOG"
exit $rc
