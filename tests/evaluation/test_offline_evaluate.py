"""The evaluate modules shipped in hf_encdec/metrics load with HF_HUB_OFFLINE=1 and agree with corpus_scores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hf_encdec.evaluation import METRIC_MODULES, load_metric, metric_script_path

# Runs in a fresh interpreter so HF_HUB_OFFLINE / HF_HOME are seen when evaluate is first imported, and with every
# non-loopback socket connection refused so that any attempt to reach the Hub fails loudly.
SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    _connect = socket.socket.connect

    def guarded_connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access attempted: {address!r}")
        return _connect(self, address)

    socket.socket.connect = guarded_connect

    import sacrebleu
    from hf_encdec.evaluation import corpus_scores, load_metric

    hyps = ["the cat sat on the mat", "a dog runs in a park", "the bird sings"]
    refs = ["the cat sat on a mat", "a dog ran in the park", "the bird sang a song"]
    refs2 = ["a cat sat on the mat", "the dog ran in a park", "a bird sings a song"]
    bleu, chrf = load_metric("bleu"), load_metric("chrf")
    out = {
        "modules": [type(bleu).__name__, type(chrf).__name__],
        "bleu": bleu.compute(predictions=hyps, references=refs),
        "chrf": chrf.compute(predictions=hyps, references=[[r] for r in refs]),
        "sacrebleu_alias": load_metric("sacrebleu").compute(predictions=hyps, references=refs)["score"],
        "bleu_two_refs": bleu.compute(predictions=hyps, references=[list(p) for p in zip(refs, refs2)])["score"],
        "direct_two_refs": sacrebleu.corpus_bleu(hyps, [refs, refs2]).score,
        "corpus_scores": corpus_scores(hyps, refs),
    }
    sys.stdout.write("RESULT" + json.dumps(out))
    """
)


def test_evaluate_load_works_offline_and_matches_corpus_scores(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "hf_home" / "modules"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.split("RESULT", 1)[1])

    assert result["modules"] == ["SacrebleuLocal", "ChrfLocal"]
    expected = result["corpus_scores"]
    assert 0.0 < expected["bleu"] < 100.0
    assert result["bleu"]["score"] == pytest.approx(expected["bleu"], abs=1e-9)
    assert result["bleu"]["signature"] == expected["bleu_signature"]
    assert result["chrf"]["score"] == pytest.approx(expected["chrf"], abs=1e-9)
    assert result["chrf"]["signature"] == expected["chrf_signature"]
    assert result["sacrebleu_alias"] == pytest.approx(expected["bleu"], abs=1e-9)
    # Multiple references per segment are transposed into sacreBLEU's reference streams.
    assert result["bleu_two_refs"] == pytest.approx(result["direct_two_refs"], abs=1e-9)
    assert result["bleu_two_refs"] != pytest.approx(expected["bleu"])


@pytest.mark.parametrize("name", sorted(METRIC_MODULES))
def test_metric_scripts_ship_inside_the_package(name: str) -> None:
    path = metric_script_path(name)
    assert path.is_absolute() and path.is_file()
    # evaluate only finds a script whose file name equals its folder name.
    assert path.stem == path.parent.name == METRIC_MODULES[name]
    assert path.parent.parent.name == "metrics"


def test_metric_names_are_case_insensitive() -> None:
    assert metric_script_path("BLEU") == metric_script_path("sacrebleu")


def test_unknown_metric_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'rouge'.*bleu, chrf, sacrebleu"):
        load_metric("rouge")
