"""`hf-encdec pretrain`: a denoising corpus from this machine's German catalogs and a few manual pages, a run trained
on it, and the fine-tuning's tokenizer equal to the pre-training's, so that `train --init-from` takes every weight."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_encdec.cli import main
from hf_encdec.data import load_corpus
from hf_encdec.data.roff import find_groff
from hf_encdec.inference import load_translator
from hf_encdec.training.recipe import TrainOptions, corpus_tokenizer
from hf_encdec.training.warm_start import WarmStartError, warm_start

SYSTEM_GERMAN = Path("/usr/share/locale/de/LC_MESSAGES")
TINY = ["--preset", "transformer-tiny", "--vocab-size", "600", "--max-steps", "10", "--eval-steps", "10",
        "--eval-size", "8", "--test-size", "8", "--logging-steps", "5"]


def _man_pages(root: Path) -> Path:
    for folder, text in ((root / "man1", "reads every file in the given directory and writes the result back"),
                         (root / "de" / "man1", "liest jede Datei im angegebenen Verzeichnis und schreibt sie zurück")):
        folder.mkdir(parents=True)
        (folder / "frob.1").write_text(f".TH FROB 1\n.SH NAME\nfrob \\- {text}.\n.SH MORE\n{text}. {text}.\n")
    return root


@pytest.mark.skipif(find_groff() is None, reason="groff is not installed")
@pytest.mark.skipif(not any(SYSTEM_GERMAN.glob("*.mo")), reason=f"no .mo files in {SYSTEM_GERMAN} on this machine")
def test_pretraining_writes_a_run_whose_weights_a_translation_run_takes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    man = _man_pages(tmp_path / "man")
    run = tmp_path / "pretrained"
    assert main(["pretrain", "--man-dir", str(man), *TINY, "--output-dir", str(run)]) == 0

    manifest = json.loads((tmp_path / "pretrained-corpus" / "denoising.json").read_text())
    assert manifest["complete"] and manifest["contents"]["train"]["de_page_segments"] > 0
    assert manifest["contents"]["train"]["de_messages"] > 1000  # the training packages' German messages
    report = json.loads((run / "eval_results.json").read_text())
    assert report["options"]["data"] == "pretrained-corpus" and report["options"]["num_beams"] == 1  # no local path

    pretrained, _ = load_translator(run)
    fresh = type(pretrained)(pretrained.config)
    # what `train --init-from` does: a tokenizer trained on the translation corpus with the same options, then the copy
    same_options = corpus_tokenizer(load_corpus("gettext:de"), TrainOptions(vocab_size=600))
    assert warm_start(fresh, run, same_options)["fresh"] == []
    other_options = corpus_tokenizer(load_corpus("gettext:de"), TrainOptions(vocab_size=700))
    with pytest.raises(WarmStartError, match="trained with another tokenizer"):
        warm_start(fresh, run, other_options)

    again = ["pretrain", "--man-dir", str(man), *TINY, "--corpus-dir", str(tmp_path / "pretrained-corpus")]
    assert main([*again, "--output-dir", str(tmp_path / "other"), "--mask-ratio", "0.5"]) == 2
    assert "holds a denoising corpus made with other settings" in caplog.text
    assert not (tmp_path / "other").exists()
