#!/usr/bin/env bash
# The main job on a fresh machine: set up, show what qlinear picks here, check every usable kernel
# against the reference, then run a small Llama-architecture model end to end per scheme
# (quantize, save + reload as compressed-tensors, generate; tokens/s and agreement with bf16).
# Arguments go to the model demo: `bash scripts/main.sh --preset llama3-8b --device cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${QLINEAR_VENV:-.venv}
"$VENV/bin/qlinear" doctor
"$VENV/bin/qlinear" verify
"$VENV/bin/python" -m qlinear.models.demo "$@"
