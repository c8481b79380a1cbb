# Sourced by the GPU bench drivers (run_gpu.sh, run_tune_gpu.sh) with SETUP=1, from the repository
# root with $PY set: installs the carried wheels (.whl/) into /tmp/site and the project with every
# provider, offline (the lent GPU machine has no network).
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
provs=()
for p in providers/*/pyproject.toml; do provs+=(-e "$(dirname "$p")"); done
$PY -m pip install -q --no-deps --no-build-isolation -e . "${provs[@]}"
