#!/usr/bin/env bash
# GPU check of the cutlass provider on an H100/H200 (cc 9.0). Run from the repository root, with the
# nvidia-cutlass wheel carried in .whl/ (carry: [".whl"]):
#     bash providers/cutlass/gpu_check.sh
# install (offline) -> build the extension once (ninja, per-family times from .ninja_log) -> GPU tests
# (3 parallel groups) beside compute-sanitizer memcheck over every path -> side-by-side bench (CUDA graphs).
# Writes under $OUT: build.log, tests-{fp8,int8,rest}.log, sanitize.log, bench.log, cutlass_bench.json.
# Budget: ~8 min (build ~2 min with 16 cores, tests and sanitizer ~2-3 min together, bench ~2-3 min).
set -o pipefail
OUT=${OUT:-/tmp/cutlass_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export QLINEAR_CUTLASS_CACHE=${QLINEAR_CUTLASS_CACHE:-/tmp/qlinear_cutlass_cache}  # kept while the machine is warm
export MAX_JOBS=${MAX_JOBS:-$(nproc)}

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/nvidia_cutlass-*.whl || exit 1
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e providers/emulation -e providers/torch \
  -e providers/triton -e providers/cutlass || exit 1
python3 -c "import torch; print(torch.cuda.get_device_name(), '| torch', torch.__version__, '| cuda', torch.version.cuda)"
nvcc --version | tail -1

echo "== build (binding + quantizers + dispatch + 16 GEMM instantiations, MAX_JOBS=$MAX_JOBS)"
timeout 420 python3 - <<'PY' 2>&1 | tail -40 | tee "$OUT/build.log"
import time
t = time.time()
from qlinear.cuda_jit import cache_root
from qlinear_cutlass import build
build.load_extension()
d = cache_root("cutlass") / build.build_key()
print(f"extension built/loaded in {time.time() - t:.1f} s into {d}")
log = d / ".ninja_log"  # start/end ms per object: per-family compile spans
if log.exists():
    spans = {}
    for line in log.read_text().splitlines()[1:]:
        start, end, _, target, _ = line.split("\t")
        fam = next((f for f, srcs in build.GEMM_SOURCES.items() if any(x.removesuffix(".cu") in target for x in srcs)), "other")
        s, e = spans.get(fam, (1 << 60, 0))
        spans[fam] = (min(s, int(start)), max(e, int(end)))
        print(f"   {target:40s} {(int(end) - int(start)) / 1000:6.1f} s")
    for fam, (s, e) in spans.items():
        print(f"family {fam}: {(e - s) / 1000:.1f} s wall (objects compiled in parallel)")
PY
grep -q "built/loaded" "$OUT/build.log" || { echo "BUILD FAILED (see build.log above)"; exit 1; }

echo "== tests (3 parallel groups) + compute-sanitizer memcheck over every path, side by side"
T=tests/providers/cutlass
PYTEST="env CUDA_LAUNCH_BLOCKING=1 timeout 300 python3 -m pytest -q -p no:cacheprovider --tb=short -rfE --maxfail=40"
$PYTEST $T/test_cutlass_gpu.py -k "CutlassFP8 or fp8" > "$OUT/tests-fp8.log" 2>&1 &
p1=$!
$PYTEST $T/test_cutlass_gpu.py -k "not (CutlassFP8 or fp8)" > "$OUT/tests-int8.log" 2>&1 &
p2=$!
QLINEAR_CUTLASS_COMPILE_CHECK=0 $PYTEST $T -k "not test_cutlass_gpu" > "$OUT/tests-rest.log" 2>&1 &  # the build above compiled everything
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
