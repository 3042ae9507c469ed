#!/usr/bin/env bash
# Creates .venv (if missing) and installs torch 2.13.0 first, then hf_encdec with its test extras.
# torch goes first because a torch requirement resolved by pip on its own would pull the CUDA build (gigabytes).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    echo "[setup] installing torch 2.13.0"
    .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
if ! .venv/bin/python -c "import hf_encdec" 2>/dev/null || [ pyproject.toml -nt .venv/.hf_encdec-installed ]; then
    echo "[setup] installing hf_encdec and its dependencies"
    .venv/bin/python -m pip install --quiet -e ".[test]"
    touch .venv/.hf_encdec-installed
fi
