#!/usr/bin/env bash
# Set up a virtual environment (.venv) with the qlinear core and the providers that make sense on
# this machine. Idempotent: a second run only re-checks. Used by the README's two commands and CI.
#
#   QLINEAR_VENV   where the environment lives (default: .venv in the repo)
#   QLINEAR_TORCH  the torch requirement (default: torch==2.13.0, the CPU build zentorch 2.13.0.2 pairs with)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${QLINEAR_VENV:-.venv}
TORCH=${QLINEAR_TORCH:-torch==2.13.0}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
# pip's exit status is kept; only this machine's noise about missing local index folders is dropped
pip() { "$PY" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

# torch first, pinned, so nothing later pulls a different (CUDA) build.
"$PY" -c "import torch" 2>/dev/null || pip install "$TORCH"
"$PY" -c "import torch" || { echo "setup: torch did not install ($TORCH)" >&2; exit 1; }

# The core and every provider, editable. Providers whose library can't run on a CPU (fbgemm,
# flashinfer, marlin need CUDA; aiter needs ROCm; xpu an Intel GPU) are installed without their
# heavy dependency: discovery, gating and weight transforms are still tested, and `qlinear doctor`
# says why they are not usable.
# triton runs here through its CPU interpreter (the triton provider's CPU tests use it); pinned to
# the version the H100 machine has, whose interpreter quirks qlinear_triton/runtime.py knows.
CPU_PROVIDERS=(emulation torch zentorch triton cpu)
"$PY" -c "import triton" 2>/dev/null || pip install "${QLINEAR_TRITON:-triton==3.6.0}"
GPU_PROVIDERS=()
for p in marlin cutlass fbgemm flashinfer aiter xpu; do [ -f "providers/$p/pyproject.toml" ] && GPU_PROVIDERS+=("$p"); done
# Already set up from these same project files? Then there is nothing to do (and pip's resolver
# would only repeat that fbgemm/flashinfer were installed without their CUDA libraries).
stamp="$VENV/.qlinear-setup"
want=$(cat pyproject.toml providers/*/pyproject.toml | sha256sum | cut -d' ' -f1)
# With nvcc on the machine the CUTLASS headers (nvidia-cutlass: headers and a code generator, installed
# without the generator's dependencies) let the cutlass provider's CUDA sources be compile-checked.
have_cutlass() { ! command -v nvcc >/dev/null || "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('cutlass_library') is None)"; }
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "import qlinear, pluggy, transformers, compressed_tensors" 2>/dev/null && have_cutlass; then
    echo "setup: ready, unchanged ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
    exit 0
fi
# the models extra: transformers, compressed-tensors, safetensors, tqdm (about 200 MB, a minute)
args=(-e ".[test,models]")
for p in "${CPU_PROVIDERS[@]}"; do [ -f "providers/$p/pyproject.toml" ] && args+=(-e "providers/$p"); done
pip install "${args[@]}"
if [ ${#GPU_PROVIDERS[@]} -gt 0 ]; then
    echo "setup: ${GPU_PROVIDERS[*]} providers installed without their GPU libraries (pip's resolver may say so; that is expected)"
    gargs=(); for p in "${GPU_PROVIDERS[@]}"; do gargs+=(-e "providers/$p"); done
    pip install --no-deps "${gargs[@]}"
fi
if command -v nvcc >/dev/null; then
    pip install --no-deps "nvidia-cutlass>=4.2,<5" || echo "setup: nvidia-cutlass did not install: the CUTLASS compile checks will skip" >&2
fi
"$PY" -c "import qlinear, pluggy" || { echo "setup: qlinear did not install" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: ready ($("$PY" -c 'import torch; print("torch", torch.__version__)'))"
