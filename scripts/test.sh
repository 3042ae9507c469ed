#!/usr/bin/env bash
# The test suite (CPU, no network): sets up .venv with the tested versions (constraints.txt) if needed, then runs
# pytest with one worker a core (pytest-xdist; a test file stays on one worker; HF_ENCDEC_TEST_WORKERS=0 runs in one
# process). Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the quick subset.
#   bash scripts/test.sh --latest    the whole suite in .venv-latest, on the newest releases pyproject.toml allows (a
#                                    new release can break any part, not only the generation contract: training,
#                                    accelerate's processes, loading); `-m contract` after it for the quick subset
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
workers=${HF_ENCDEC_TEST_WORKERS:-auto}
if [ "${1:-}" = "--latest" ]; then
    shift
    bash scripts/setup.sh --latest
    exec .venv-latest/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
fi
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -n "$workers" --dist loadfile "$@"
