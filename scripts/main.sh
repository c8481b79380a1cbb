#!/usr/bin/env bash
# The main job on a fresh machine: set up, then show what qlinear picks here and check every
# usable kernel against the reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${QLINEAR_VENV:-.venv}
"$VENV/bin/qlinear" doctor
"$VENV/bin/qlinear" verify
