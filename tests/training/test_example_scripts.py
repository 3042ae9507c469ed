"""examples/run_mlm.py, run_clm.py, run_classification.py and run_translation.py: each trains a few steps on a tiny
config with one of our model types and with a stock transformers one, writes all_results.json, and its folder loads
back with the Auto classes (and as remote code, for ours)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import datasets
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from hf_encdec.training.scripts import (
    DataArguments,
    group_texts,
    load_splits,
    package_halves,
    parse_config_overrides,
    tokenize_texts,
)
from helpers import run_without_hf_encdec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WORDS = "the file system command option prints list directory user process memory signal returns value error".split()
TINY_BLOCK = "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=37"
COMMON = ["--do_train", "--do_eval", "--max_steps", "4", "--per_device_train_batch_size", "8", "--report_to", "none",
          "--save_strategy", "no", "--seed", "3"]


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the script's string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def results(folder: Path) -> dict:
    return json.loads((folder / "all_results.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Text, labelled and parallel files: train/validation/test of each."""
    folder = tmp_path_factory.mktemp("data")
    rng = random.Random(0)
    for split, count in (("train", 240), ("validation", 30), ("test", 30)):
        lines = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(count)]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
        rows = []
        for _ in range(count):
            label = rng.randrange(3)
            rows.append({"text": " ".join(rng.choice(WORDS[5 * label:5 * label + 5]) for _ in range(10)),
                         "label": "abc"[label]})
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        pairs = ["source\ttarget"]
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(4)]
            pairs.append(" ".join(words) + "\t" + " ".join(reversed(words)))
        (folder / f"{split}.tsv").write_text("\n".join(pairs) + "\n")
    return folder


def text_files(data: Path, extension: str, *, test: bool = False) -> list[str]:
    files = ["--train_file", str(data / f"train.{extension}"), "--validation_file", str(data / f"validation.{extension}")]
    return files + (["--test_file", str(data / f"test.{extension}")] if test else [])


REMOTE = """
import json, sys
sys.modules["hf_encdec"] = None  # hf_encdec must not be importable here
import torch, transformers
model = getattr(transformers, sys.argv[2]).from_pretrained(sys.argv[1], trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
with torch.no_grad():
    print(json.dumps(model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits.tolist()))
"""


def assert_loads_as_remote_code(folder: Path, auto_class: type, tmp_path: Path) -> None:
    logits = run_without_hf_encdec(REMOTE, str(folder), auto_class.__name__, home=tmp_path / "hf_home")
    model = auto_class.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([[5, 6, 7, 8]])).logits
    torch.testing.assert_close(torch.tensor(logits), expected)


@pytest.fixture(scope="module")
def mlm_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our encoder pretrained a few steps with a WordPiece tokenizer trained on the training file."""
    output = tmp_path_factory.mktemp("mlm") / "ours"
    script("run_mlm").main([
        "--model_type", "hf_encdec_encoder", "--config_overrides", TINY_BLOCK, *text_files(data, "txt"),
        "--tokenizer_type", "wordpiece", "--vocab_size", "300", "--max_seq_length", "32", *COMMON,
        "--output_dir", str(output),
    ])
    return output


def test_run_mlm_trains_our_encoder_and_reports_perplexity(mlm_run: Path, tmp_path: Path) -> None:
    report = results(mlm_run)
    assert report["perplexity"] == pytest.approx(math.exp(report["eval_loss"]))
    assert report["train_samples"] > 0 and report["eval_samples"] > 0
    tokenizer = AutoTokenizer.from_pretrained(mlm_run)
    assert any(token.startswith("##") for token in tokenizer.get_vocab())  # the WordPiece tokenizer was saved
    assert type(AutoModelForMaskedLM.from_pretrained(mlm_run)).__name__ == "EncoderForMaskedLM"
    assert_loads_as_remote_code(mlm_run, AutoModelForMaskedLM, tmp_path)


def test_run_mlm_scores_bert_on_the_same_masked_positions(mlm_run: Path, data: Path, tmp_path: Path) -> None:
    run_mlm = script("run_mlm")
    common = [*text_files(data, "txt"), "--tokenizer_name", str(mlm_run), "--max_seq_length", "32", *COMMON]
    bert = run_mlm.main(["--model_type", "bert", "--config_overrides", TINY_BLOCK, *common,
                         "--output_dir", str(tmp_path / "bert")])
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "bert")).__name__ == "BertForMaskedLM"
    assert bert["perplexity"] == pytest.approx(math.exp(bert["eval_loss"]))
    # the validation blocks are masked once with a fixed seed: evaluating twice gives the same loss
    again = run_mlm.main(["--model_name_or_path", str(tmp_path / "bert"), *common[:-len(COMMON)],
                          "--do_eval", "--report_to", "none", "--seed", "3", "--output_dir", str(tmp_path / "again")])
    assert again["eval_loss"] == pytest.approx(bert["eval_loss"], rel=1e-5)


@pytest.mark.parametrize(
    ("model", "auto_name"),
    [(["--preset", "decoder-small-llama", "--config_overrides", "hidden_size=32,num_hidden_layers=2,intermediate_size=48"],
      "DecoderForCausalLM"),
     (["--model_type", "gpt2", "--config_overrides", "hidden_size=32,num_hidden_layers=2,num_attention_heads=4"],
      "GPT2LMHeadModel"),
     (["--model_type", "llama", "--config_overrides", "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,"
       "num_key_value_heads=1,intermediate_size=48"], "LlamaForCausalLM")],
    ids=["ours-llama-preset", "gpt2", "llama"],
)
def test_run_clm_trains_and_writes_perplexity_and_samples(model: list[str], auto_name: str, data: Path,
                                                           tmp_path: Path) -> None:
    output = tmp_path / "clm"
    report = script("run_clm").main([*model, *text_files(data, "txt"), "--vocab_size", "300", "--block_size", "32",
                                     "--num_samples", "2", "--sample_new_tokens", "5", *COMMON,
                                     "--output_dir", str(output)])
    assert report["perplexity"] == pytest.approx(math.exp(report["eval_loss"]))
    assert results(output)["eval_loss"] == report["eval_loss"]
    # the reported loss is the mean over the predicted tokens (each block's first token is never one), for stock
    # models too: the Trainer once counted GPT-2's first labels and reported (T-1)/T of its loss
    loaded = AutoModelForCausalLM.from_pretrained(output).eval()
    tokenizer = AutoTokenizer.from_pretrained(output)
    corpus = load_splits(DataArguments(train_file=str(data / "train.txt"),
                                       validation_file=str(data / "validation.txt")), task="text")
    blocks = torch.tensor(group_texts(tokenize_texts(corpus, tokenizer), 32)["validation"]["input_ids"])  # (N, 32)
    with torch.no_grad():
        logits = loaded(input_ids=blocks).logits  # (N, 32, V)
    mean = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), blocks[:, 1:].flatten()).item()
    assert report["eval_loss"] == pytest.approx(mean, rel=1e-4)
    samples = json.loads((output / "samples.json").read_text())
    assert len(samples) == 2 and all(sample["prompt"] and "greedy" in sample for sample in samples)
    assert type(loaded).__name__ == auto_name
    if auto_name == "DecoderForCausalLM":
        assert loaded.config.position_type == "rope" and loaded.config.num_key_value_heads == 1
        assert_loads_as_remote_code(output, AutoModelForCausalLM, tmp_path)


def test_run_clm_resumes_from_its_checkpoint(data: Path, tmp_path: Path) -> None:
    run_clm = script("run_clm")
    common = ["--model_type", "hf_encdec_decoder", "--config_overrides", TINY_BLOCK, *text_files(data, "txt"),
              "--vocab_size", "300", "--block_size", "32", "--num_samples", "0", "--do_train",
              "--per_device_train_batch_size", "8", "--report_to", "none", "--save_steps", "2",
              "--output_dir", str(tmp_path / "run")]
    run_clm.main([*common, "--max_steps", "2"])
    run_clm.main([*common, "--max_steps", "4", "--resume_from_checkpoint", "true"])
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "train_loss" in entry] == [4]


def test_run_classification_fine_tunes_the_mlm_checkpoint_and_bert_from_scratch(mlm_run: Path, data: Path,
                                                                               tmp_path: Path) -> None:
    run = script("run_classification")
    common = [*text_files(data, "jsonl", test=True), "--max_seq_length", "32", "--do_predict", *COMMON]
    ours = run.main(["--model_name_or_path", str(mlm_run), *common, "--output_dir", str(tmp_path / "ours")])
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "ours")
    assert type(loaded).__name__ == "EncoderForSequenceClassification"
    assert loaded.config.id2label == {0: "a", 1: "b", 2: "c"}
    # the encoder weights came from the masked-LM run
    pretrained = AutoModelForMaskedLM.from_pretrained(mlm_run).get_input_embeddings().weight
    tuned = loaded.get_input_embeddings().weight
    assert (tuned - pretrained).abs().max() < 0.01 < (pretrained - pretrained.mean()).abs().max()  # 4 small steps away
    for report in (ours, results(tmp_path / "ours")):
        assert 0.0 <= report["eval_accuracy"] <= 1.0 and 0.0 <= report["eval_f1"] <= 1.0
        assert "predict_accuracy" in report and "eval_majority_accuracy" in report
    labels = [json.loads(line)["label"] for line in (data / "validation.jsonl").read_text().splitlines()]
    counts = {label: labels.count(label) for label in set(labels)}
    train_labels = [json.loads(line)["label"] for line in (data / "train.jsonl").read_text().splitlines()]
    majority = max(set(train_labels), key=train_labels.count)
    assert ours["eval_majority_accuracy"] == pytest.approx(counts.get(majority, 0) / len(labels))
    bert = run.main(["--model_type", "bert", "--config_overrides", TINY_BLOCK, "--tokenizer_name", str(mlm_run),
                     *common, "--output_dir", str(tmp_path / "bert")])
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path / "bert")).__name__ == \
        "BertForSequenceClassification"
    assert bert["eval_samples"] == ours["eval_samples"] == len(labels)


@pytest.mark.parametrize(
    "model",
    [["--model_type", "hf_encdec_transformer", "--config_overrides",
      "hidden_size=32,encoder_layers=2,decoder_layers=2,num_attention_heads=4,intermediate_size=37"],
     ["--model_type", "marian", "--config_overrides",
      "d_model=32,encoder_layers=2,decoder_layers=2,encoder_attention_heads=4,decoder_attention_heads=4,"
      "encoder_ffn_dim=37,decoder_ffn_dim=37"],
     ["--model_type", "bart", "--config_overrides",
      "d_model=32,encoder_layers=1,decoder_layers=1,encoder_attention_heads=4,decoder_attention_heads=4,"
      "encoder_ffn_dim=37,decoder_ffn_dim=37"]],
    ids=["ours", "marian", "bart"],
)
def test_run_translation_trains_scores_and_writes_predictions(model: list[str], data: Path, tmp_path: Path) -> None:
    output = tmp_path / "translation"
    report = script("run_translation").main([
        *model, *text_files(data, "tsv", test=True), "--vocab_size", "300", "--max_target_length", "12",
        "--do_predict", "--predict_with_generate", "--max_predict_samples", "7", *COMMON, "--output_dir", str(output),
    ])
    assert {"eval_bleu", "eval_chrf", "predict_bleu", "predict_chrf", "eval_loss"} <= set(report)
    predictions = [json.loads(line) for line in (output / "predictions.jsonl").read_text().splitlines()]
    sources = [line.split("\t")[0] for line in (data / "test.tsv").read_text().splitlines()[1:8]]
    assert [row["source"] for row in predictions] == sources
    assert AutoModelForSeq2SeqLM.from_pretrained(output).config.vocab_size == len(AutoTokenizer.from_pretrained(output))


def test_package_halves_split_one_package_in_two_stable_disjoint_halves() -> None:
    rows = {"source": [f"message {i}" for i in range(40)] + ["other"], "target": ["x"] * 41,
            "package": ["git"] * 40 + ["grep"]}
    corpus = datasets.DatasetDict(train=datasets.Dataset.from_dict({k: v[:30] for k, v in rows.items()}),
                                  test=datasets.Dataset.from_dict({k: v[30:] for k, v in rows.items()}))
    halves = package_halves(corpus, "git")
    train, test = set(halves["train"]["source"]), set(halves["test"]["source"])
    assert train | test == {f"message {i}" for i in range(40)} and not train & test
    assert 10 <= len(train) <= 30 and halves["validation"]["source"] == halves["test"]["source"]
    assert package_halves(corpus, "git")["train"]["source"] == halves["train"]["source"]
    with pytest.raises(ValueError, match="'nope' has 0 messages; packages: git, grep"):
        package_halves(corpus, "nope")


def test_bad_arguments_get_clear_errors(data: Path, tmp_path: Path) -> None:
    run_clm = script("run_clm")
    files = text_files(data, "txt")
    with pytest.raises(ValueError, match="not key=value"):
        parse_config_overrides("hidden_size=32,layers")
    with pytest.raises(ValueError, match=r"\['n_layers'\] are not fields of gpt2"):
        run_clm.main(["--model_type", "gpt2", "--config_overrides", "n_layers=2", *files, "--vocab_size", "300",
                      "--output_dir", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="exactly one of --model_name_or_path"):
        run_clm.main(["--model_type", "gpt2", "--preset", "decoder-small", *files, "--output_dir", str(tmp_path / "b")])
    with pytest.raises(ValueError, match="does not fit this script; it takes manpages"):
        run_clm.main(["--model_type", "gpt2", "--dataset_name", "gettext:de", "--output_dir", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="unknown --model_type 'gpt5'"):
        run_clm.main(["--model_type", "gpt5", *files, "--vocab_size", "300", "--output_dir", str(tmp_path / "d")])


def test_the_side_by_side_table_compares_each_pair_of_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("side_by_side_table", EXAMPLES / "side_by_side_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, values, architecture in (
        ("mlm-ours", {"predict_perplexity": 20.0, "train_runtime": 120.0}, "EncoderForMaskedLM"),
        ("mlm-bert", {"predict_perplexity": 25.0}, "BertForMaskedLM"),
        ("cls-ours-pretrained", {"predict_accuracy": 0.8, "predict_f1": 0.7, "predict_majority_accuracy": 0.4}, "E"),
        ("adapt-before", {"predict_bleu": 20.0, "predict_chrf": 40.0}, "P"),
        ("adapt-after", {"predict_bleu": 30.0, "predict_chrf": 50.0, "predict_samples": 9}, "P"),
        ("clm-ours-gpt2", {"predict_perplexity": 100.0}, "D"),
        ("clm-ours-gpt2-seed1", {"predict_perplexity": 110.0}, "D"),
        ("clm-ours-gpt2-seed2", {"predict_perplexity": 120.0}, "D"),
        ("clm-gpt2", {"predict_perplexity": 99.0}, "G"),
        ("clm-gpt2-seed7", {"predict_perplexity": 121.0}, "G"),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "all_results.json").write_text(json.dumps(values))
        (tmp_path / name / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    text = module.table(tmp_path)
    row = next(line for line in text.splitlines() if line.startswith("| masked LM"))
    assert "`EncoderForMaskedLM` | 20.000 (2.0 min) | `BertForMaskedLM` | 25.000 | 1.250 |" in row
    assert "| sections from MLM checkpoint (test accuracy) | `E` | 0.800 | `?` | not run | - |" in text
    assert "BLEU 20.00 -> 30.00, chrF 40.00 -> 50.00" in text and "git, 9 held-out messages" in text
    # seeds: mean ± sample standard deviation, and the ratio of the means (110 / 110)
    assert "| `D` | 110.000 ± 10.000 (3 seeds) | `G` | 110.000 ± 15.556 (2 seeds) | 1.000 |" in text
    (tmp_path / "cls-ours-pretrained-seed1").mkdir()
    (tmp_path / "cls-ours-pretrained-seed1" / "all_results.json").write_text(
        json.dumps({"predict_accuracy": 0.6, "predict_f1": 0.5, "predict_majority_accuracy": 0.4}))
    text = module.table(tmp_path)
    assert "cls-ours-pretrained: accuracy 0.700, macro-F1 0.600, majority class 0.400 (mean of 2 seeds)" in text


LAUNCHERS = {
    "torchrun": ["torchrun", "--nproc_per_node", "2", "--master_port", "29551"],
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29553"],
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
def test_a_script_runs_unchanged_on_two_processes(launcher: str, data: Path, tmp_path: Path) -> None:
    command = LAUNCHERS[launcher]
    command = [shutil.which(command[0], path=str(Path(sys.executable).parent)) or command[0], *command[1:]]
    output = tmp_path / launcher
    completed = subprocess.run(
        [*command, str(EXAMPLES / "run_clm.py"), "--model_type", "hf_encdec_decoder", "--config_overrides", TINY_BLOCK,
         *text_files(data, "txt"), "--vocab_size", "300", "--block_size", "32", "--num_samples", "1",
         "--sample_new_tokens", "3", *COMMON, "--output_dir", str(output)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    state = json.loads((output / "trainer_state.json").read_text())
    report = results(output)
    assert state["global_step"] == 4 and report["train_processes"] == 2 and report["eval_loss"] > 0
    assert type(AutoModelForCausalLM.from_pretrained(output)).__name__ == "DecoderForCausalLM"
    assert len(json.loads((output / "samples.json").read_text())) == 1  # written once, by the main process
