#!/usr/bin/env bash
# The measured kernel table of this card, and the checks of issue #13 that need a GPU. Run from the
# repository root on the GPU machine; results under $OUT (default bench/out). With SETUP=1 it first
# installs the carried wheels (.whl/) and the project with every provider, offline (as run_gpu.sh).
#
#   SETUP=1 STEP=tune bash bench/run_tune_gpu.sh      # qlinear tune: $OUT/tables/<arch>-<card>.json (BUDGET 240 s, LIMIT 290 s)
#   STEP=compile bash bench/run_tune_gpu.sh           # opcheck + torch.compile(fullgraph) + first-call graph capture
#   STEP=overhead bash bench/run_tune_gpu.sh          # eager wall vs CUDA-graph time per selected kernel, M <= 16
#
# The table is written to $CACHE/tables/ (default bench/out/qlinear-cache, git-ignored, so it stays
# on a warm machine between calls; carry that folder to a fresh one) and copied to $OUT/tables/.
# STEP=compile and STEP=overhead run with QLINEAR_CACHE_DIR=$CACHE: selection uses that table.
# Back on the development machine: `qlinear tune --from <that file> --split-into-providers` writes each
# provider's rows into providers/<name>/qlinear_<name>/tables/, the tables that ship.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
PY=${PYTHON:-python3}
STEP=${STEP:-tune}
[ "${SETUP:-0}" = 1 ] && source bench/gpu_setup.sh
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
CACHE=${CACHE:-bench/out/qlinear-cache}
mkdir -p "$OUT" "$CACHE/tables"
export QLINEAR_CACHE_DIR="$CACHE"   # the user table selection reads is the one STEP=tune writes
case "$STEP" in
    tune)
        status=0
        # --budget: no new (scheme, shape) after BUDGET s; LIMIT: a hard stop (rows already written stay)
        timeout "${LIMIT:-290}" $PY -m qlinear.cli tune --device cuda --out "$CACHE/tables/" --budget "${BUDGET:-240}" "$@" 2>&1 \
            | tee "$OUT/tune.log" || status=$?
        cp -r "$CACHE/tables" "$OUT/"   # what was measured comes back even from a cut run
        exit "$status" ;;
    compile)
        $PY -m pytest -q -p no:cacheprovider tests/test_compile_gpu.py "$@" 2>&1 | tee "$OUT/compile_gpu.log" ;;
    overhead)
        $PY bench/call_overhead.py --device cuda --out "$OUT" "$@" 2>&1 | tee "$OUT/call_overhead.log" ;;
    *) echo "STEP must be tune, compile or overhead" >&2; exit 2 ;;
esac
