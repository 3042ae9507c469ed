"""Sequence-level distillation and a non-autoregressive run through the `hf-encdec` commands: `distill` writes a
corpus folder that `train` reads and resumes after an interruption, a NAT trains on it, and its run folder reports
the comparison with its teacher and works with `translate`, `evaluate` and remote code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_encdec.cli import main
from hf_encdec.data import load_corpus
from hf_encdec.inference import load_drafter, load_translator, translate
from hf_encdec.models.speculative import HypothesisLookupDrafter
from helpers import run_without_hf_encdec

TEACHER = [
    "--data", "synthetic:reverse", "--preset", "transformer-tiny", "--vocab-size", "300", "--max-tokens", "512",
    "--eval-size", "16", "--test-size", "24", "--num-beams", "2", "--max-new-tokens", "16", "--logging-steps", "5",
    "--max-steps", "60", "--eval-steps", "30",
]
NAT_CONFIG = {"model_type": "hf_encdec_nat", "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
              "encoder_layers": 2, "decoder_layers": 2, "max_position_embeddings": 64}
# the CTC variant with glancing, the teacher's shapes (transformer-tiny) so that a warm start takes every layer
CTC_CONFIG = {**NAT_CONFIG, "intermediate_size": 256, "decoder_input_type": "upsampled_source", "glancing_ratio": 0.5}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("teacher") / "reverse"
    assert main(["train", *TEACHER, "--output-dir", str(output)]) == 0
    return output


def _distill_args(teacher: Path, output: Path, *extra: str) -> list[str]:
    return ["distill", str(teacher), "--data", "synthetic:reverse", "--output-dir", str(output),
            "--max-train-samples", "40", "--chunk-size", "16", "--max-new-tokens", "16", *extra]


@pytest.fixture(scope="module")
def distilled(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("distilled") / "reverse"
    assert main(_distill_args(teacher, output)) == 0
    return output


def test_distill_writes_the_teachers_translations_and_keeps_the_real_references(teacher: Path, distilled: Path) -> None:
    corpus, original = load_corpus(str(distilled)), load_corpus("synthetic:reverse")
    sources = original["train"]["source"][:40]
    model, tokenizer = load_translator(teacher)
    assert corpus["train"]["source"] == sources
    outputs = translate(model, tokenizer, sources, max_new_tokens=16, progress=False)
    expected = [output if output.strip() else reference for output, reference in zip(outputs, original["train"]["target"])]
    assert corpus["train"]["target"] == expected and any(output.strip() for output in outputs)
    for split in ("validation", "test"):
        assert corpus[split]["target"] == original[split]["target"]
    manifest = json.loads((distilled / "distill.json").read_text())
    assert manifest["complete"] and manifest["splits"]["train"] == 40 and manifest["settings"]["num_beams"] == 2
    assert manifest["empty_teacher_outputs_replaced_by_the_reference"] == sum(not o.strip() for o in outputs)


def test_an_interrupted_distillation_keeps_its_finished_chunks(teacher: Path, tmp_path: Path) -> None:
    output = tmp_path / "distilled"
    assert main(_distill_args(teacher, output)) == 0
    first = load_corpus(str(output))["train"]["target"]
    chunk = output / ".chunks" / "00000000.jsonl"
    rows = [json.loads(line) for line in chunk.read_text().splitlines()]
    rows[0]["target"] = "kept from the first run"
    chunk.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (output / ".chunks" / "00000032.jsonl").unlink()  # the run stopped in the last chunk
    (output / "train.jsonl").unlink()
    assert main(_distill_args(teacher, output)) == 0
    again = load_corpus(str(output))["train"]["target"]
    assert again[0] == "kept from the first run" and again[1:] == first[1:]
    assert main(_distill_args(teacher, output, "--beams", "1")) == 2  # other settings into the same folder: refused


def _nat_args(data: str, folder: Path, *extra: str, config_values: dict | None = None) -> list[str]:
    config = folder / "nat.json"
    config.write_text(json.dumps(config_values or NAT_CONFIG))
    return ["train", "--data", data, "--config", str(config), "--vocab-size", "300", "--max-tokens", "512",
            "--eval-size", "16", "--test-size", "24", "--max-new-tokens", "16", "--logging-steps", "5",
            "--max-steps", "20", "--eval-steps", "10", "--num-iterations", "4", "--length-beam-size", "2",
            "--output-dir", str(folder / "run"), *extra]


@pytest.fixture(scope="module")
def nat_run(distilled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    undistilled = tmp_path_factory.mktemp("undistilled")
    assert main(_nat_args("synthetic:reverse", undistilled)) == 0
    folder = tmp_path_factory.mktemp("nat")
    assert main(_nat_args(str(distilled), folder, "--undistilled", str(undistilled / "run"),
                          "--comparison-size", "12")) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def ctc_run(teacher: Path, distilled: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ctc")
    assert main(_nat_args(str(distilled), folder, "--comparison-size", "12", "--init-from", str(teacher),
                          "--glancing-ratio-end", "0.3", config_values=CTC_CONFIG)) == 0
    return folder / "run"


def test_a_ctc_run_started_from_its_teacher_reports_one_pass_against_the_teacher(ctc_run: Path, teacher: Path) -> None:
    report = json.loads((ctc_run / "eval_results.json").read_text())
    assert report["decoding"] == {"ctc": True} and report["options"]["init_from"] == teacher.name  # no local path
    rows = report["decoding_comparison"]["rows"]
    assert set(rows) == {"NAT (CTC), one pass", "NAT (CTC), T=2", "NAT (CTC), T=4", "AR teacher, greedy",
                         "AR teacher, beam 4", "references", "copy the source"}  # glancing-trained: refined too
    assert rows["NAT (CTC), one pass"]["sentences/s (batch 1)"] > 0
    generation = json.loads((ctc_run / "generation_config.json").read_text())
    assert "num_iterations" not in generation and "length_beam_size" not in generation
    assert "CTC, one pass" in (ctc_run / "README.md").read_text()
    config = json.loads((ctc_run / "config.json").read_text())
    assert config["decoder_input_type"] == "upsampled_source" and config["glancing_ratio"] == 0.5


def test_init_from_a_run_with_another_tokenizer_is_refused_before_training(
    teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = _nat_args("synthetic:reverse", tmp_path, "--init-from", str(teacher), "--tokenizer-model", "unigram",
                     config_values=CTC_CONFIG)
    assert main(args) == 2
    assert f"{teacher} was trained with another tokenizer" in caplog.text
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_nat_comparison_options_fail_before_training(
    teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["train", *TEACHER, "--output-dir", str(tmp_path / "ar"), "--undistilled", str(teacher)]) == 2
    assert "compares NAT runs; this run trains hf_encdec_transformer, which is autoregressive" in caplog.text
    assert main(_nat_args("synthetic:reverse", tmp_path, "--undistilled", str(tmp_path / "missing"))) == 2
    assert f"model folder {tmp_path / 'missing'} does not exist" in caplog.text
    assert main(_nat_args("synthetic:reverse", tmp_path, "--comparison-size", "0", "--overwrite")) == 2
    assert "comparison_size must be a positive number of test pairs or None, got 0" in caplog.text
    assert not (tmp_path / "ar" / "checkpoints").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_a_nat_run_reports_its_iterations_teacher_speed_and_repetition(nat_run: Path) -> None:
    report = json.loads((nat_run / "eval_results.json").read_text())
    assert report["decoding"] == {"num_iterations": 4, "length_beam_size": 2}
    assert report["decoding_comparison"]["test_pairs"] == 12
    rows = report["decoding_comparison"]["rows"]
    expected = {"NAT, T=1, length beam 2", "NAT, T=4, length beam 2", "NAT, T=10, length beam 2",
                "NAT, T=1, length beam 2, de-duplicated", "NAT, T=1, length beam 2, AR re-scoring",
                "NAT without distillation, T=4, length beam 2", "AR teacher, greedy", "AR teacher, beam 4",
                "references", "copy the source"}
    assert set(rows) == expected
    for name in expected - {"references", "copy the source"}:
        row = rows[name]
        assert 0 <= row["BLEU"] <= 100 and row["sentences/s (batch 1)"] > 0 and row["sentences/s (batch 32)"] > 0
        assert 0 <= row["token repetition"] <= 1
    card = (nat_run / "README.md").read_text()
    assert "| NAT, T=10, length beam 2 |" in card and "the same 12 test pairs, evenly spaced" in card
    assert "mask-predict, 4 iterations, length beam 2" in card
    generation = json.loads((nat_run / "generation_config.json").read_text())
    assert generation["num_iterations"] == 4 and generation["length_beam_size"] == 2


def test_a_nat_trained_on_a_distilled_corpus_has_its_teachers_tokenizer_and_drafts_for_it(
    teacher: Path, distilled: Path, nat_run: Path
) -> None:
    model, tokenizer = load_translator(teacher)
    _, student_tokenizer = load_translator(nat_run)
    assert student_tokenizer.get_vocab() == tokenizer.get_vocab()  # not one trained on the distilled targets
    drafter = load_drafter(nat_run, model, tokenizer)
    source = ["1 2 3 4", "7 7 8"]
    greedy = translate(model, tokenizer, source, num_beams=1, max_new_tokens=16, progress=False)
    assert translate(model, tokenizer, source, num_beams=1, max_new_tokens=16, progress=False, draft=drafter) == greedy


@pytest.mark.parametrize("draft", ["ctc_run", "lookup:nat_run"])
def test_a_nats_translation_drafts_for_its_teacher_through_lookup(
    draft: str, teacher: Path, request: pytest.FixtureRequest
) -> None:
    """A CTC NAT's run, or any NAT's with `lookup:`, drafts through its translation of each source
    (HypothesisLookupDrafter); the output is still the teacher's greedy output."""
    prefix, _, name = draft.rpartition(":")
    folder = request.getfixturevalue(name)
    model, tokenizer = load_translator(teacher)
    drafter = load_drafter(f"{prefix}:{folder}" if prefix else folder, model, tokenizer)
    assert isinstance(drafter, HypothesisLookupDrafter)
    source = ["1 2 3 4", "7 7 8", "5 6 5 6 9"]
    greedy = translate(model, tokenizer, source, num_beams=1, max_new_tokens=16, progress=False)
    assert translate(model, tokenizer, source, num_beams=1, max_new_tokens=16, progress=False, draft=drafter) == greedy


@pytest.mark.parametrize("run", ["nat_run", "ctc_run"])
def test_translate_and_evaluate_work_on_a_nat_run(run: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    nat_run = request.getfixturevalue(run)
    report = tmp_path / "report.json"
    assert main(["evaluate", str(nat_run), "--data", "synthetic:reverse", "--limit", "8", "--report", str(report)]) == 0
    assert json.loads(report.read_text())["sentences"] == 8
    model, tokenizer = load_translator(nat_run)
    translations = translate(model, tokenizer, ["1 2 3 4", "5 6"], max_new_tokens=16, progress=False)
    assert len(translations) == 2 and all(isinstance(text, str) for text in translations)


REMOTE = """
import json, sys
sys.modules["hf_encdec"] = None
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
inputs = tokenizer(["1 2 3 4"], return_tensors="pt")
print(json.dumps(tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True)))
"""


@pytest.mark.parametrize("run", ["nat_run", "ctc_run"])
def test_a_nat_run_folder_loads_as_remote_code(run: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    nat_run = request.getfixturevalue(run)
    remote = run_without_hf_encdec(REMOTE, str(nat_run), home=tmp_path)
    model, tokenizer = load_translator(nat_run)
    inputs = tokenizer(["1 2 3 4"], return_tensors="pt")
    expected = tokenizer.batch_decode(model.generate(**inputs), skip_special_tokens=True)
    assert remote == expected


def test_translate_takes_the_nat_settings_and_refuses_them_for_an_autoregressive_run(
    nat_run: Path, teacher: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "in.txt"
    source.write_text("1 2 3 4\n5 6\n")
    out = tmp_path / "out.txt"
    args = ["translate", str(nat_run), "--input", str(source), "--output", str(out), "--max-new-tokens", "16",
            "--iterations", "1", "--length-beam-size", "2", "--no-protect"]
    assert main([*args, "--deduplicate", "--rescore-with", str(teacher)]) == 0
    model, tokenizer = load_translator(nat_run)
    teacher_model, _ = load_translator(teacher)
    expected = translate(model, tokenizer, ["1 2 3 4", "5 6"], max_new_tokens=16, num_iterations=1,
                         length_beam_size=2, deduplicate=True, rescorer=teacher_model, progress=False, protect=False)
    assert out.read_text().splitlines() == expected
    assert main(["translate", str(teacher), "--input", str(source), "--deduplicate"]) == 2
    assert "--deduplicate: settings of non-autoregressive (NAT) models" in caplog.text
