#!/usr/bin/env bash
# The main job's model demo on the lent GPU: a Llama-3-8B-shaped model (random weights, seed 0,
# all 32 layers), batch-1 greedy decode with attention, bf16 against each scheme. Run from the
# repository root on the GPU machine (nothing to carry:
# transformers and safetensors are there; the demo does not save checkpoints for the 8B preset, so
# compressed-tensors is not needed). Runs tests/models' gpu-marked tests first. Writes the logs under
# $OUT (default bench/out).
#
#   bash bench/run_models_gpu.sh                  # static KV cache, the decode step compiled and replayed
#                                                 # as one CUDA graph per token, layers chosen for decode,
#                                                 # q/k/v and gate/up fused, the step's device time profiled
#   LM_HEAD=1 bash bench/run_models_gpu.sh        # lm_head quantized too
#   MODE=static bash bench/run_models_gpu.sh      # transformers' generate with its static cache
#   MODE=dynamic bash bench/run_models_gpu.sh     # transformers' generate, dynamic cache, eager
#   SCHEMES=w4a16-g128,fp8-dynamic bash bench/run_models_gpu.sh   # fewer schemes
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
$PY -m pip install -q --no-deps --no-build-isolation -e . -e providers/emulation -e providers/torch \
    -e providers/triton -e providers/marlin
# the model-level GPU tests first (tiny Llama; the round trip skips where compressed-tensors is absent)
timeout 300 $PY -m pytest -q -m gpu -p no:cacheprovider -rs tests/models 2>&1 | tail -15 | tee "$OUT/models-gpu-tests.log"
args=(--preset llama3-8b --device cuda --tokens "${TOKENS:-64}")
[ -n "${SCHEMES:-}" ] && args+=(--schemes "$SCHEMES")
tag=${MODE:-graph}
case "$tag" in
  graph) args+=(--cuda-graph --compile --regime decode --fuse --profile 16 --json "$OUT/models-llama3-8b-graph.json")
         [ -n "${LM_HEAD:-}" ] && args+=(--lm-head) ;;
  static) args+=(--static-cache) ;;
  dynamic) ;;
  *) echo "MODE: graph, static or dynamic, got $tag" >&2; exit 2 ;;
esac
$PY -m qlinear.models.demo "${args[@]}" 2>&1 | grep -v -i "warn" | tee "$OUT/models-llama3-8b-$tag.log"
