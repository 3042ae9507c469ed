#!/usr/bin/env bash
# The main job on the embedded default: English->German software messages from this machine's gettext catalogs, the
# training split joined by the pairs of its translated manual pages (gettext+man:de) where it has them and groff.
# Builds the corpus, trains a BPE tokenizer and a Transformer, reports BLEU/chrF on held-out packages next to the
# copy-the-source baseline, prints sample translations and writes a Hub-ready folder (runs/main-<date>-<time> unless --output-dir is given).
#   bash scripts/main.sh                 # the full run (26.4 min of training on 2 AMD EPYC cores, 2026-12-05)
#   bash scripts/main.sh --quick         # a smoke run of a few minutes
#   bash scripts/main.sh --data gettext:de               # the catalogs alone (the default before 2026-12-05)
#   bash scripts/main.sh --data gettext:fr --output-dir runs/gettext-fr
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
args=("$@")
if [[ ! " ${args[*]} " =~ " --output-dir " ]]; then
    # a fresh folder per run, so an earlier run is never overwritten
    args+=(--output-dir "runs/main-$(date +%Y%m%d-%H%M%S)")
fi
if [[ ! " ${args[*]} " =~ " --data "|" --data=" ]]; then
    if .venv/bin/python -c "from hf_encdec.data.manpages_parallel import find_translated_pages
from hf_encdec.data.roff import find_groff
find_groff(); find_translated_pages('de')" 2>/dev/null; then
        args+=(--data gettext+man:de)
    else
        echo "main.sh: this machine has no German manual pages beside their English originals (or no groff);" \
             "training on the gettext catalogs alone (--data gettext:de)" >&2
        args+=(--data gettext:de)
    fi
fi
exec .venv/bin/hf-encdec train "${args[@]}"
