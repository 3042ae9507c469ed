"""The `hf-encdec` commands on a tiny configuration: train writes a Hub-ready folder, translate and evaluate use it,
bad input fails clearly, an interrupted run resumes exactly, and two processes train together."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import polib
import pytest
import yaml
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from transformers import AutoModelForSeq2SeqLM, PreTrainedTokenizerFast, TrainerCallback

from hf_encdec.cli import main
from hf_encdec.data import tokenizer_fingerprint
from hf_encdec.evaluation import corpus_scores
from hf_encdec.hub import find_local_paths, strip_local_paths
from hf_encdec.inference import load_translator, trained_on_software_messages, translate, translate_nbest
from hf_encdec.localization.catalog import directive_problems, msgfmt_check
from hf_encdec.training import ScheduledSamplingCallback, TrainOptions, run_training
from hf_encdec.training import recipe
from hf_encdec.training.recipe import LENGTH_PENALTIES, ResumeOptionsError, RunFolderExistsError, _write_translations, read_translations
from helpers import run_without_hf_encdec

TINY = [
    "--data", "synthetic:reverse", "--preset", "transformer-tiny", "--vocab-size", "300", "--max-tokens", "512",
    "--eval-size", "16", "--test-size", "24", "--num-beams", "2", "--max-new-tokens", "16", "--logging-steps", "5",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("run") / "reverse"
    assert main(["train", *TINY, "--max-steps", "20", "--eval-steps", "10", "--output-dir", str(output)]) == 0
    return output


def test_train_writes_a_hub_ready_folder(trained: Path) -> None:
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md",
                 "attention.png", "loss_curve.png", "eval_results.json", "modeling_transformer.py",
                 "configuration_transformer.py", "transformer_layers.py"):
        assert (trained / name).is_file(), name
    config = json.loads((trained / "config.json").read_text())
    assert config["training_data"] == "synthetic:reverse"  # what translate() reads to protect software messages
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_transformer.TransformerForConditionalGeneration"
    generation = json.loads((trained / "generation_config.json").read_text())
    assert generation["num_beams"] == 2 and generation["decoder_start_token_id"] == 1
    report = json.loads((trained / "eval_results.json").read_text())
    assert report["test_sentences"] == 24 and report["global_step"] == 20 and report["processes"] == 1
    # the length penalty is the validation trials' best (mean of BLEU and chrF), saved for translate/evaluate
    trials = report["decoding"]["validation_trials"]
    assert [trial["length_penalty"] for trial in trials] == list(LENGTH_PENALTIES)
    best = max(trial["bleu"] + trial["chrf"] for trial in trials)
    penalty = generation.get("length_penalty", 1.0)  # a default value is not written
    chosen = next(trial for trial in trials if trial["length_penalty"] == penalty)
    assert chosen["bleu"] + chosen["chrf"] == best and report["decoding"]["length_penalty"] == penalty
    # every test pair's translation is written; scoring the file gives the reported scores
    rows = read_translations(trained / "test_translations.jsonl")
    assert len(rows) == 24 and read_translations(trained) == rows and list(rows[0]) == ["source", "reference", "translation"]
    rescored = corpus_scores([row["translation"] for row in rows], [row["reference"] for row in rows])
    assert rescored["chrf"] == pytest.approx(report["test"]["chrf"]) and rescored["bleu"] == pytest.approx(report["test"]["bleu"])
    card = (trained / "README.md").read_text()
    assert f"{report['test']['chrf']:.2f}"[:4] in card and "attention.png" in card and "loss_curve.png" in card
    assert (trained / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


REMOTE = """
import json, sys
sys.modules["hf_encdec"] = None
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
ids = model.generate(**tokenizer(["1 2 3 4"], return_tensors="pt"))
print(json.dumps(tokenizer.batch_decode(ids, skip_special_tokens=True)))
"""


def test_output_folder_loads_as_remote_code_without_hf_encdec(trained: Path, tmp_path: Path) -> None:
    remote = run_without_hf_encdec(REMOTE, str(trained), home=tmp_path)
    model, tokenizer = load_translator(trained)
    expected = translate(model, tokenizer, ["1 2 3 4"], num_beams=2, max_new_tokens=16, progress=False)
    assert remote == expected


def test_a_run_records_its_tokenizer_and_refuses_another_of_the_same_size(trained: Path, tmp_path: Path) -> None:
    _, tokenizer = load_translator(trained)
    assert json.loads((trained / "config.json").read_text())["tokenizer_fingerprint"] == tokenizer_fingerprint(tokenizer)
    swapped = tmp_path / "swapped"
    shutil.copytree(trained, swapped, ignore=shutil.ignore_patterns("checkpoints"))
    state = json.loads((swapped / "tokenizer.json").read_text())
    vocab = state["model"]["vocab"]
    first, second = (token for token, index in vocab.items() if index in (100, 101))
    vocab[first], vocab[second] = vocab[second], vocab[first]  # the same size and special ids, another vocabulary
    (swapped / "tokenizer.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match=r"is not the one the model was trained with \(config.tokenizer_fingerprint"):
        load_translator(swapped)


def test_a_runs_config_file_builds_a_model_for_another_tokenizer_of_the_same_size(trained: Path) -> None:
    """A run's config.json as --config: the architecture is reused, the fingerprint is the new tokenizer's (the
    recorded one is the old run's, not part of the architecture)."""
    _, tokenizer = load_translator(trained)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = state["model"]["vocab"]
    first, second = (token for token, index in vocab.items() if index in (100, 101))
    vocab[first], vocab[second] = vocab[second], vocab[first]
    backend = Tokenizer.from_str(json.dumps(state))
    other = PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer.special_tokens_map)
    options = TrainOptions(data="synthetic:reverse", preset=None, config_file=str(trained / "config.json"))
    model = recipe._build_model(options, other)
    recorded = json.loads((trained / "config.json").read_text())["tokenizer_fingerprint"]
    assert model.config.tokenizer_fingerprint == tokenizer_fingerprint(other) != recorded


def test_translate_reads_stdin_and_evaluate_writes_a_report(trained: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "hf_encdec", "translate", str(trained), "--beams", "2", "--max-new-tokens", "16"],
        input="1 2 3\n\n4 5 6 7\n", capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.split("\n")
    model, tokenizer = load_translator(trained)
    expected = translate(model, tokenizer, ["1 2 3", "4 5 6 7"], num_beams=2, max_new_tokens=16, progress=False)
    assert lines[:3] == [expected[0], "", expected[1]]

    report_path = tmp_path / "report.json"
    args = ["evaluate", str(trained), "--data", "synthetic:reverse", "--limit", "10", "--beams", "2", "--report", str(report_path)]
    assert main(args) == 0
    report = json.loads(report_path.read_text())
    assert report["sentences"] == 10 and 0 <= report["scores"]["chrf"] <= 100 and "copy_baseline" in report


def test_translate_po_fills_a_template_that_msgfmt_accepts(trained: Path, tmp_path: Path) -> None:
    template = polib.POFile(wrapwidth=0)
    template.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    template.append(polib.POEntry(msgid="1 2 3\n", msgstr=""))
    template.append(polib.POEntry(msgid="\n4 5 6 7", msgstr=""))
    template.append(polib.POEntry(msgid="8 %s 9", msgstr="", flags=["c-format"]))
    template.append(polib.POEntry(msgid="7 8", msgstr="8 7"))
    template.save(str(tmp_path / "demo.pot"))
    args = ["translate-po", str(trained), str(tmp_path / "demo.pot"), "--beams", "2", "--max-new-tokens", "16"]
    assert main([*args, "--output", str(tmp_path / "de.po"), "--language", "de"]) == 0
    filled = polib.pofile(str(tmp_path / "de.po"))
    assert filled.metadata["Language"] == "de" and filled.metadata["Plural-Forms"] == "nplurals=2; plural=(n != 1);"
    entries = {entry.msgid: entry for entry in filled}
    assert entries["7 8"].msgstr == "8 7" and "fuzzy" not in entries["7 8"].flags
    assert entries["1 2 3\n"].msgstr.endswith("\n") and "fuzzy" in entries["1 2 3\n"].flags
    assert entries["\n4 5 6 7"].msgstr.startswith("\n")
    assert entries["8 %s 9"].msgstr == "" or "%s" in entries["8 %s 9"].msgstr
    # the plain hypotheses keep no layout: the command fails exactly when its own checks find a broken entry
    code = main([*args, "--output", str(tmp_path / "plain.po"), "--language", "de", "--no-protect"])
    checked = msgfmt_check(tmp_path / "plain.po")
    assert code == (1 if directive_problems(tmp_path / "plain.po") or (checked and checked.rejected) else 0)
    assert main([*args, "--output", str(tmp_path / "x.po")]) == 2  # a template needs --language


def test_translate_po_refuses_a_broken_catalog_before_loading_a_model(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's catalog: exit status 2, the line named, no output; the model folder is not even looked at (it does
    not exist here, and the error is the catalog's)."""
    source = Path(__file__).parent.parent / "fixtures" / "po" / "unterminated.de.po"
    line = source.read_text(encoding="utf-8").split("\n").index('msgid "unterminated') + 1
    output = tmp_path / "out.po"
    assert main(["translate-po", str(tmp_path / "no-model"), str(source), "--output", str(output)]) == 2
    assert f"unterminated.de.po:{line}: end-of-line within string" in caplog.text and "no-model" not in caplog.text
    assert not output.exists()


def test_translate_prints_no_u_fffd(byte_level_copier: Path) -> None:
    """A copy cut by --max-new-tokens inside a three-byte character decodes to U+FFFD: `hf-encdec translate` passes
    over such hypotheses."""
    lines = ["文件不存在", "日本語のテキスト", "Café closed"]
    model, tokenizer = load_translator(byte_level_copier, device="cpu")
    raw = translate_nbest(model, tokenizer, lines, num_beams=2, max_new_tokens=5, progress=False)
    assert any("\ufffd" in hypotheses[0] for hypotheses in raw)  # premise: the best hypotheses as they are hold it
    completed = subprocess.run(
        [sys.executable, "-m", "hf_encdec", "translate", str(byte_level_copier), "--beams", "2", "--max-new-tokens", "5"],
        input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "\ufffd" not in completed.stdout
    assert completed.stdout.split("\n")[:3] == translate(model, tokenizer, lines, num_beams=2, max_new_tokens=5, progress=False)


def test_translations_file_round_trips_tabs_newlines_and_backslashes(tmp_path: Path) -> None:
    texts = {"source": ["a\tb", "line\nbreak", "back\\slash \\t"], "target": ["x", "y\\n", "z"]}
    hypotheses = ["h\t1", "h\\2", "h\n3"]
    path = tmp_path / "t.jsonl"
    _write_translations(path, datasets.Dataset.from_dict(texts), hypotheses)
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3  # one line a pair
    rows = read_translations(path)
    assert [row["source"] for row in rows] == texts["source"] and [row["reference"] for row in rows] == texts["target"]
    assert [row["translation"] for row in rows] == hypotheses



def test_translations_of_earlier_versions_still_read(tmp_path: Path) -> None:
    """Runs written before the JSON Lines file hold test_translations.tsv: a header, tabs, backslash escapes."""
    lines = ["source\treference\ttranslation", "a\\tb\tx\th\\t1", "line\\nbreak\ty\\\\n\th\\\\2"]
    (tmp_path / "test_translations.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_translations(tmp_path) == [
        {"source": "a\tb", "reference": "x", "translation": "h\t1"},
        {"source": "line\nbreak", "reference": "y\\n", "translation": "h\\2"},
    ]


def test_an_existing_run_folder_is_a_library_error_in_library_terms(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "eval_results.json").write_text("{}")
    with pytest.raises(RunFolderExistsError, match="resume=True") as error:
        run_training(_options(tmp_path / "run"))
    assert error.value.path == tmp_path / "run" and "--" not in str(error.value)


def test_explicit_zeros_on_the_command_line_are_kept(tmp_path: Path) -> None:
    output = tmp_path / "zeros"
    args = ["train", *TINY, "--max-steps", "2", "--eval-steps", "2", "--label-smoothing", "0", "--warmup-steps", "0",
            "--length-penalty", "0", "--output-dir", str(output)]
    assert main(args) == 0
    options = json.loads((output / "train_options.json").read_text())
    assert options["label_smoothing"] == 0 and options["warmup_steps"] == 0 and options["length_penalty"] == 0
    assert json.loads((output / "generation_config.json").read_text())["length_penalty"] == 0
    assert json.loads((output / "eval_results.json").read_text())["decoding"]["validation_trials"] == []


def test_bad_input_fails_clearly_and_overwrites_nothing(trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    before = (trained / "model.safetensors").read_bytes()
    assert main(["train", *TINY, "--max-steps", "2", "--output-dir", str(trained)]) == 2
    assert (trained / "model.safetensors").read_bytes() == before
    assert main(["train", "--data", str(tmp_path / "missing.tsv"), "--output-dir", str(tmp_path / "x")]) == 2
    assert main(["train", "--data", "gettext:xx", "--output-dir", str(tmp_path / "y")]) == 2
    assert main(["translate", str(tmp_path / "nothing")]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--preset", "no-such-preset"])
    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RuntimeError, match="corrupt or partial"):
        load_translator(broken)
    errors = caplog.text
    assert "already holds a run" in errors and "--resume" in errors and "missing.tsv" in errors and "language 'xx'" in errors


class _Crash(TrainerCallback):
    """Stands in for a killed process: dies at a step after a checkpoint was written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


def _options(output: Path, **extra: object) -> TrainOptions:
    return TrainOptions(
        data="synthetic:reverse", output_dir=str(output), preset="transformer-tiny", vocab_size=300, max_tokens=256,
        max_steps=12, eval_steps=4, eval_size=8, test_size=8, num_beams=1, max_new_tokens=12,
        early_stopping_patience=100, save_total_limit=5, **extra,
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """The report and folder of the `_options` run trained without interruption."""
    folder = tmp_path_factory.mktemp("straight") / "run"
    return run_training(_options(folder)), folder


def test_an_interrupted_run_resumes_exactly_where_it_stopped(
    tmp_path: Path, straight: tuple[dict[str, Any], Path]
) -> None:
    straight, straight_folder = straight
    with pytest.raises(KeyboardInterrupt):
        run_training(_options(tmp_path / "crashed"), callbacks=[_Crash(step=10)])
    checkpoints = tmp_path / "crashed" / "checkpoints"
    # a checkpoint being written when the process died: no COMPLETE marker
    shutil.copytree(checkpoints / "checkpoint-8", checkpoints / "checkpoint-10")
    (checkpoints / "checkpoint-10" / "COMPLETE").unlink()
    recorded = (tmp_path / "crashed" / "train_options.json").read_text()
    with pytest.raises(ResumeOptionsError, match="max_steps: started with 12, now 20") as error:
        changed = dataclasses.replace(_options(tmp_path / "crashed", resume=True), max_steps=20,
                                      model_overrides={"encoder_layers": 1})
        run_training(changed)
    assert set(error.value.differences) == {"max_steps", "model_overrides"}
    assert (tmp_path / "crashed" / "train_options.json").read_text() == recorded
    resumed = run_training(_options(tmp_path / "crashed", resume=True))
    assert list(checkpoints.glob("checkpoint-10.incomplete-*")), "the partial checkpoint was set aside"
    assert resumed["global_step"] == straight["global_step"] == 12
    final_straight = load_file(straight_folder / "checkpoints" / "checkpoint-12" / "model.safetensors")
    final_resumed = load_file(checkpoints / "checkpoint-12" / "model.safetensors")
    for name, tensor in final_straight.items():
        torch.testing.assert_close(final_resumed[name], tensor, rtol=0, atol=0, msg=name)
    assert resumed["test"] == straight["test"]
    # stopped again after training, while testing: resuming takes no further step and tests the same model
    (tmp_path / "crashed" / "eval_results.json").unlink()
    # the command line resumes with the options the run recorded: none but the folder need be given again
    assert main(["train", "--output-dir", str(tmp_path / "crashed"), "--resume"]) == 0
    again = json.loads((tmp_path / "crashed" / "eval_results.json").read_text())
    assert again["global_step"] == 12 and again["test"] == straight["test"]
    # the mean over the logged steps (the last log was at step 10), not the loss of one more step
    assert again["train_loss"] == pytest.approx(straight["train_loss"], rel=0.05)
    assert not (checkpoints / "checkpoint-13").exists()


def test_a_checkpoint_saved_with_other_stateful_callbacks_resumes_and_saves_again(tmp_path: Path) -> None:
    """A checkpoint of an earlier version names transformers' EarlyStoppingCallback in its trainer_state.json, where a
    warmup_stable_decay run now has DecayEarlyStopping: transformers' save would fail on the missing entry."""
    options = _options(tmp_path / "run", lr_scheduler_type="warmup_stable_decay", warmup_steps=2)
    with pytest.raises(KeyboardInterrupt):
        run_training(options, callbacks=[_Crash(step=6)])
    checkpoints = tmp_path / "run" / "checkpoints"
    state_file = checkpoints / "checkpoint-4" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["stateful_callbacks"]["EarlyStoppingCallback"] = state["stateful_callbacks"].pop("DecayEarlyStopping")
    state_file.write_text(json.dumps(state))
    assert run_training(dataclasses.replace(options, resume=True))["global_step"] == 12
    saved = json.loads((checkpoints / "checkpoint-8" / "trainer_state.json").read_text())["stateful_callbacks"]
    assert saved["DecayEarlyStopping"]["args"]["early_stopping_patience"] == 100


def test_bpe_dropout_segmentations_are_made_once_and_a_resumed_run_trains_on_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="hf_encdec.training.recipe"):
        report = run_training(_options(run, bpe_dropout=0.5))
    assert report["global_step"] == 12 and "BPE-dropout 0.50:" in caplog.text
    segmentations = datasets.load_from_disk(str(run / "checkpoints" / recipe.SEGMENTATIONS))
    model, tokenizer = load_translator(run)
    usual = [tokenizer(text)["input_ids"] for text in segmentations["target"]]
    assert sum(ids != plain for ids, plain in zip(segmentations["labels"], usual)) > len(usual) // 10
    assert json.loads((run / "tokenizer.json").read_text())["model"]["dropout"] is None  # translation segments as usual
    # stopped after step 8: the resumed run reads the same segmentations, so it ends with the same weights
    resumed = tmp_path / "resumed"
    shutil.copytree(run, resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-12")
    (resumed / "eval_results.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_encdec.training.recipe"):
        again = run_training(_options(resumed, bpe_dropout=0.5, resume=True))
    assert again["global_step"] == 12
    final = load_file(run / "checkpoints" / "checkpoint-12" / "model.safetensors")
    final_resumed = load_file(resumed / "checkpoints" / "checkpoint-12" / "model.safetensors")
    for name, tensor in final.items():
        torch.testing.assert_close(final_resumed[name], tensor, rtol=0, atol=0, msg=name)
    assert "reusing the BPE-dropout segmentations" in caplog.text


def test_resuming_a_run_on_data_files_asks_for_them_again(tmp_path: Path) -> None:
    """A run folder records local paths by their base names only, so the command line cannot find them by itself."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_options.json").write_text(json.dumps({"data": "pairs.tsv", "config_file": None, "max_steps": 12}))
    with pytest.raises(SystemExit, match="data files named 'pairs.tsv'; pass --data PATH"):
        main(["train", "--output-dir", str(run), "--resume"])


def test_a_moved_run_folder_resumes_exactly(
    tmp_path: Path, straight: tuple[dict[str, Any], Path], caplog: pytest.LogCaptureFixture
) -> None:
    """The Trainer records its checkpoints by absolute path; a run folder moved (and renamed) after a crash resumes
    from its own checkpoints, keeps its best one, and ends where the uninterrupted run ends."""
    straight, straight_folder = straight
    with pytest.raises(KeyboardInterrupt):
        run_training(_options(tmp_path / "first" / "run"), callbacks=[_Crash(step=10)])
    moved = tmp_path / "elsewhere" / "renamed-run"
    moved.parent.mkdir()
    shutil.move(tmp_path / "first" / "run", moved)
    with caplog.at_level(logging.INFO):
        resumed = run_training(_options(moved, resume=True))
    assert "is now" in caplog.text and "does not exist anymore" not in caplog.text  # the best checkpoint followed
    assert resumed["global_step"] == 12 and resumed["test"] == straight["test"]
    final_straight = load_file(straight_folder / "model.safetensors")
    final_resumed = load_file(moved / "model.safetensors")  # the best checkpoint's weights, as in the straight run
    for name, tensor in final_straight.items():
        torch.testing.assert_close(final_resumed[name], tensor, rtol=0, atol=0, msg=name)
    assert resumed["best_checkpoint"] == straight["best_checkpoint"] and (moved / resumed["best_checkpoint"]).is_dir()
    assert not (tmp_path / "first" / "run").exists()
    assert resumed["options"]["output_dir"] == "renamed-run"
    for name in ("config.json", "eval_results.json", "train_options.json", "README.md"):
        assert str(tmp_path) not in (moved / name).read_text(), name


@pytest.mark.parametrize("training_data", ["/home/alice/work/heldout", "gettext:de", None])
def test_old_run_folders_load_and_decide_directive_protection_as_before(
    trained: Path, tmp_path: Path, training_data: str | None
) -> None:
    """A folder written before the config kept a label (its training_data an absolute path, or none at all and the
    data in train_options.json) loads, translates and protects software messages as it did, also after
    `hf-encdec push --strip-local-paths` rewrote its paths."""
    old = tmp_path / "old"
    shutil.copytree(trained, old, ignore=shutil.ignore_patterns("checkpoints", "tokenizer"))
    config = json.loads((old / "config.json").read_text())
    config.pop("training_data")
    if training_data is not None:
        config["training_data"] = training_data
    (old / "config.json").write_text(json.dumps(config))
    options = json.loads((old / "train_options.json").read_text())
    options.update(data=training_data or "/home/alice/work/heldout", output_dir=str(tmp_path / "runs" / "old"))
    (old / "train_options.json").write_text(json.dumps(options))
    protects = training_data == "gettext:de"

    model, tokenizer = load_translator(old)
    assert trained_on_software_messages(model) is protects
    before = translate(model, tokenizer, ["1 2 3", "4 5 6 7"], num_beams=2, max_new_tokens=16, progress=False)
    assert find_local_paths(old)  # the old folder is refused as it is
    stripped = strip_local_paths(old)
    assert ("train_options.json", "output_dir") in {(item.file, item.key) for item in stripped}
    assert find_local_paths(old) == []
    model, tokenizer = load_translator(old)
    assert trained_on_software_messages(model) is protects
    assert json.loads((old / "config.json").read_text()).get("training_data") == (
        None if training_data is None else "gettext:de" if protects else "files"
    )
    assert translate(model, tokenizer, ["1 2 3", "4 5 6 7"], num_beams=2, max_new_tokens=16, progress=False) == before


LAUNCHERS = {
    "torchrun": ["torchrun", "--nproc_per_node", "2", "--master_port", "29541", "-m", "hf_encdec"],
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29543", "-m", "hf_encdec"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_two_processes_train_together(launcher: str, tmp_path: Path) -> None:
    output = tmp_path / launcher
    command = LAUNCHERS[launcher]
    command = [shutil.which(command[0], path=str(Path(sys.executable).parent)) or command[0], *command[1:]]
    completed = subprocess.run(
        [*command, "train", *TINY, "--max-steps", "8", "--eval-steps", "4", "--output-dir", str(output)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((output / "eval_results.json").read_text())
    assert report["processes"] == 2 and report["global_step"] == 8
    assert (output / "model.safetensors").is_file()


def test_scheduled_sampling_on_the_command_line_moves_the_probability_each_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--scheduled-sampling KIND:NAME=VALUE,...` adds the callback; a bad schedule fails before any work."""
    seen: list[float] = []

    class Recording(ScheduledSamplingCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN003
            super().on_step_begin(args, state, control, model=model, **kwargs)
            seen.append(model.config.scheduled_sampling_probability)

    monkeypatch.setattr(recipe, "ScheduledSamplingCallback", Recording)
    output = tmp_path / "scheduled"
    schedule = "linear:k=1,c=0.5"  # eps_i = 1 - 0.5 i: p = 0, 0.5, 1
    assert main(["train", *TINY, "--max-steps", "3", "--eval-steps", "3", "--scheduled-sampling", schedule,
                 "--set", "scheduled_sampling_mode=argmax", "--output-dir", str(output)]) == 0
    assert seen == [0.0, 0.5, 1.0]
    assert json.loads((output / "train_options.json").read_text())["scheduled_sampling"] == schedule
    assert "scheduled_sampling" not in (output / "config.json").read_text()
    assert main(["train", *TINY, "--scheduled-sampling", "cosine:k=2", "--output-dir", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_user_files_and_a_config_file_train_an_rnn_model(tmp_path: Path) -> None:
    """User data (TSV) and a JSON model config of another family go through the same job."""
    rows = ["source\ttarget"] + [f"{i % 7} {i % 5} {i % 3}\t{i % 3} {i % 5} {i % 7}" for i in range(240)]
    (tmp_path / "pairs.tsv").write_text("\n".join(rows) + "\n")
    (tmp_path / "rnn.json").write_text(json.dumps({
        "model_type": "hf_encdec_rnn_seq2seq", "rnn_type": "gru", "attention_type": "bahdanau", "input_feeding": False,
        "embedding_size": 24, "hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1,
    }))
    output = tmp_path / "rnn-run"
    args = ["train", "--data", str(tmp_path / "pairs.tsv"), "--config", str(tmp_path / "rnn.json"), "--vocab-size", "280",
            "--max-steps", "6", "--eval-steps", "3", "--eval-size", "8", "--num-beams", "2", "--max-new-tokens", "8",
            "--output-dir", str(output)]
    assert main(args) == 0
    report = json.loads((output / "eval_results.json").read_text())
    assert report["model"] == "RNNSeq2SeqForConditionalGeneration" and report["global_step"] == 6
    assert report["test_sentences"] > 0 and (output / "attention.png").is_file()
    assert json.loads((output / "config.json").read_text())["model_type"] == "hf_encdec_rnn_seq2seq"
    card = (output / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    # nothing says which languages these are, and a local path is neither a Hub id nor anybody else's business
    assert "language" not in front and "datasets" not in front and str(tmp_path) not in card
    assert front["model-index"][0]["results"][0]["dataset"]["name"] == "pairs.tsv"
    # --source-lang/--target-lang name the languages of the source/target columns
    assert main([*args, "--overwrite", "--max-steps", "1", "--source-lang", "fr", "--target-lang", "de"]) == 0
    front = yaml.safe_load((output / "README.md").read_text().split("---")[1])
    assert front["language"] == ["fr", "de"] and "fr-de" in front["tags"]


def test_a_config_file_trains_a_pointer_generator_that_loads_back(tmp_path: Path) -> None:
    """The copy family goes through the whole job too: training, beam decoding of the test split, the folder."""
    (tmp_path / "pg.json").write_text(json.dumps({
        "model_type": "hf_encdec_pointer_generator", "hidden_size": 32, "num_attention_heads": 4,
        "intermediate_size": 48, "encoder_layers": 1, "decoder_layers": 1,
    }))
    output = tmp_path / "pg-run"
    args = ["train", "--data", "synthetic:reverse", "--config", str(tmp_path / "pg.json"), "--vocab-size", "300",
            "--max-steps", "6", "--eval-steps", "3", "--eval-size", "8", "--test-size", "16", "--num-beams", "2",
            "--max-new-tokens", "8", "--output-dir", str(output)]
    assert main(args) == 0
    report = json.loads((output / "eval_results.json").read_text())
    assert report["model"] == "PointerGeneratorForConditionalGeneration" and report["global_step"] == 6
    assert report["test_sentences"] == 16 and (output / "attention.png").is_file()
    assert (output / "copy_mechanism.py").is_file()  # shipped for remote code
    loaded = AutoModelForSeq2SeqLM.from_pretrained(output)
    assert type(loaded).__name__ == "PointerGeneratorForConditionalGeneration"
