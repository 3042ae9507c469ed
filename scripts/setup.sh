#!/usr/bin/env bash
# Creates a virtual environment and installs hf_encdec with its test extras.
#   bash scripts/setup.sh            .venv with the tested version of every dependency (constraints.txt)
#   bash scripts/setup.sh --latest   .venv-latest with the newest releases pyproject.toml allows (torch stays 2.13.0)
# torch goes first: a torch requirement resolved by pip on its own would pull the CUDA build (gigabytes), and a newer
# torch than the CPU wheel on this disk would too, so both environments hold torch 2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mode=locked venv=.venv
if [ "${1:-}" = "--latest" ]; then
    mode=latest venv=.venv-latest
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating $venv with $($PYTHON --version)"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
fi
pip_install() { "$venv/bin/python" -m pip install --quiet "$@"; }
if [ "$mode" = locked ]; then
    # reinstall whenever the lock or the package's requirements change (a stamp of both, not file times)
    stamp=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$venv/.hf_encdec-installed" 2>/dev/null)" != "$stamp" ] || ! "$venv/bin/python" -c "import hf_encdec" 2>/dev/null; then
        echo "[setup] installing torch 2.13.0, then hf_encdec and its dependencies at the versions of constraints.txt"
        pip_install -c constraints.txt "torch==2.13.0"
        pip_install -c constraints.txt -e ".[test]"
        echo "$stamp" > "$venv/.hf_encdec-installed"
    fi
else
    echo "[setup] installing torch 2.13.0, then the newest hf_encdec dependencies that pyproject.toml allows"
    pip_install "torch==2.13.0"
    pip_install --upgrade --upgrade-strategy eager -c <(echo "torch==2.13.0") -e ".[test]"
    "$venv/bin/python" -m pip list 2>/dev/null \
        | grep -iE "^(torch|transformers|tokenizers|accelerate|datasets|safetensors|evaluate|huggingface.hub|sacrebleu) " \
        | sed 's/^/[setup] /'
fi
# transformers' own common model tests for the installed release (tests/hf/test_transformers_common.py), cached
"$venv/bin/python" scripts/fetch_transformers_tests.py
