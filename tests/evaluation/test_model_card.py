"""write_model_card: YAML front matter that parses, every number of the facts in the card, nothing hard-coded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hf_encdec.model_card import ModelCardFacts, load_model_card_template, write_model_card

VASWANI = """@inproceedings{vaswani2017attention,
  title = {Attention Is All You Need},
  author = {Vaswani, Ashish and Shazeer, Noam and others},
  booktitle = {NeurIPS},
  year = {2017},
  note = {arXiv:1706.03762}
}"""


def _facts(**overrides: Any) -> ModelCardFacts:
    arguments: dict[str, Any] = {
        "model_name": "tiny-transformer-de-en",
        "family": "transformer",
        "family_summary": "encoder-decoder Transformer (Vaswani et al. 2017)",
        "configuration": {"encoder_layers": 3, "hidden_size": 48, "position_type": "rope"},
        "metrics": {
            "bleu": 27.1828,
            "chrf": 53.1415,
            "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0",
            "num_segments": 321,
        },
        "baseline_metrics": {"bleu": 3.25, "chrf": 21.5},
        "data": {"dataset": "toy/gettext-de-en", "hub_dataset_id": "toy/gettext-de-en", "eval_split": "validation",
                 "train_pairs": 4567},
        "training": {"epochs": 17, "learning_rate": 0.00071, "train_runtime_s": 654.3},
        "samples": [
            ("Der Hund läuft .", "The dog runs .", "The dog is running ."),
            ("a | b", "<unk> c", "d"),
        ],
        "images": {"Cross-attention heatmap": "attention.png", "Loss curve": "plots/loss.png"},
        "language_pair": ("de", "en"),
        "citations": [VASWANI],
        "model_id": "someone/tiny-transformer-de-en",
    }
    arguments.update(overrides)
    return ModelCardFacts(**arguments)


def _split_card(text: str) -> tuple[dict[str, Any], str]:
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", text, flags=re.DOTALL)
    assert match, "the card must start with a YAML front matter block"
    return yaml.safe_load(match.group(1)), match.group(2)


def _write(tmp_path: Path, **overrides: Any) -> str:
    (tmp_path / "plots").mkdir(parents=True, exist_ok=True)
    for image in ("attention.png", "plots/loss.png"):
        (tmp_path / image).write_bytes(b"\x89PNG\r\n\x1a\n")
    path = write_model_card(tmp_path, _facts(**overrides))
    assert path == tmp_path / "README.md"
    return path.read_text(encoding="utf-8")


def test_front_matter_parses_and_carries_the_metadata(tmp_path: Path) -> None:
    front, _ = _split_card(_write(tmp_path))
    assert front["language"] == ["de", "en"]
    assert front["license"] == "apache-2.0"
    assert front["library_name"] == "transformers"
    assert front["pipeline_tag"] == "translation"
    assert {"translation", "hf_encdec", "hf_encdec_transformer"} <= set(front["tags"])
    assert front["datasets"] == ["toy/gettext-de-en"]


def test_model_index_holds_the_measured_scores_exactly(tmp_path: Path) -> None:
    front, _ = _split_card(_write(tmp_path))
    (entry,) = front["model-index"]
    assert entry["name"] == "tiny-transformer-de-en"
    (result,) = entry["results"]
    assert result["task"]["type"] == "translation"
    assert result["dataset"]["split"] == "validation"
    values = {metric["type"]: metric["value"] for metric in result["metrics"]}
    # Bookkeeping such as num_segments is not a score.
    assert values == {"bleu": 27.1828, "chrf": 53.1415}


def test_body_has_every_section_and_the_passed_values(tmp_path: Path) -> None:
    _, body = _split_card(_write(tmp_path))
    for heading in (
        "# tiny-transformer-de-en",
        "## Model description",
        "## Intended use",
        "## How to use",
        "## Training data",
        "## Training procedure",
        "## Evaluation results",
        "## Sample translations",
        "## Limitations and bias",
        "## Citation",
    ):
        assert re.search(rf"^{re.escape(heading)}$", body, flags=re.MULTILINE), heading
    # Results table: model, baseline, difference.
    assert "| BLEU (sacreBLEU) | 27.18 | 3.25 | +23.93 |" in body
    assert "| chrF (sacreBLEU) | 53.14 | 21.50 | +31.64 |" in body
    assert "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0" in body
    assert "321 segments" in body
    # Configuration, data and training values.
    for row in ("| encoder_layers | 3 |", "| position_type | rope |", "| train_pairs | 4567 |", "| epochs | 17 |"):
        assert row in body
    assert "0.00071" in body
    # Samples, escaped for Markdown tables.
    assert "| Der Hund läuft . | The dog runs . | The dog is running . |" in body
    assert "| a \\| b | &lt;unk&gt; c | d |" in body
    # Figures and citations.
    assert "![Cross-attention heatmap](attention.png)" in body
    assert "![Loss curve](plots/loss.png)" in body
    assert "Attention Is All You Need" in body and "```bibtex" in body
    assert "{{" not in body and "{%" not in body, "unfilled template placeholder"


def test_usage_snippet_loads_with_remote_code(tmp_path: Path) -> None:
    _, body = _split_card(_write(tmp_path))
    snippet = re.search(r"```python\n(.*?)```", body, flags=re.DOTALL)
    assert snippet is not None
    code = snippet.group(1)
    compile(code, "snippet", "exec")
    assert 'model_id = "someone/tiny-transformer-de-en"' in code
    assert "AutoModelForSeq2SeqLM.from_pretrained(model_id, trust_remote_code=True, use_kernels=False)" in code
    assert "AutoTokenizer.from_pretrained(model_id" in code
    assert "model.generate(" in code
    assert "'Der Hund läuft .'" in code


def test_numbers_come_from_the_arguments(tmp_path: Path) -> None:
    first = _write(tmp_path / "a")
    second = _write(tmp_path / "b", metrics={"bleu": 11.11, "chrf": 44.44}, baseline_metrics=None)
    assert "27.18" in first and "27.18" not in second
    assert "| BLEU (sacreBLEU) | 11.11 |" in second
    assert "copy baseline" not in _split_card(second)[1].split("## Evaluation results")[1].split("##")[0]


def test_trainer_metric_prefixes_are_dropped(tmp_path: Path) -> None:
    metrics = {"eval_bleu": 12.5, "eval_chrf": 40.25, "eval_gen_len": 9.5, "eval_runtime": 3.2, "epoch": 5.0}
    front, body = _split_card(_write(tmp_path, metrics=metrics))
    values = {m["type"]: m["value"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert values == {"bleu": 12.5, "chrf": 40.25}
    assert "| BLEU (sacreBLEU) | 12.50 | 3.25 | +9.25 |" in body
    assert "| mean generated length (tokens) | 9.50 | – | – |" in body
    assert "runtime" not in body.split("## Evaluation results")[1].split("## Sample")[0]


def test_custom_license_and_language_pair(tmp_path: Path) -> None:
    front, body = _split_card(_write(tmp_path, license="mit", language_pair=("fr", "de")))
    assert front["license"] == "mit"
    assert front["language"] == ["fr", "de"]
    assert "**fr → de**" in body


@pytest.mark.parametrize("bad_path", ["/abs/attention.png", "../outside.png"], ids=["absolute", "parent"])
def test_image_paths_must_stay_inside_the_folder(tmp_path: Path, bad_path: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        write_model_card(tmp_path, _facts(images={"heatmap": bad_path}))
    assert not (tmp_path / "README.md").exists()


def test_local_data_and_unknown_languages_leave_the_hub_metadata_out(tmp_path: Path) -> None:
    """`datasets` takes Hub ids, and a made-up language code makes a card wrong: local data is named in the prose
    and model-index only, and a card whose data says no language names none."""
    front, body = _split_card(_write(tmp_path, language_pair=None, data={"dataset": "my-corpus", "eval_split": "test"}))
    assert "language" not in front and "datasets" not in front
    assert front["model-index"][0]["results"][0]["dataset"] == {"name": "my-corpus", "type": "local", "split": "test"}
    assert "the source language → the target language" in body and "my-corpus" in body


def test_bad_language_pair_and_missing_scores_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="language_pair"):
        write_model_card(tmp_path, _facts(language_pair=("de",)))
    with pytest.raises(ValueError, match="no numeric value"):
        write_model_card(tmp_path, _facts(metrics={"bleu_signature": "x"}))


def test_template_is_package_data_with_one_copy_in_the_repository() -> None:
    template = load_model_card_template()
    assert "{{ card_data }}" in template and "{{ results_section }}" in template
    repo_copy = Path(__file__).resolve().parents[2] / "model_cards" / "translation.md"
    if repo_copy.exists():  # absent when the tests run from an installed sdist without the repo folders
        assert repo_copy.read_text(encoding="utf-8") == template


def test_missing_image_file_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="hf_encdec.model_card"):
        write_model_card(tmp_path, _facts(images={"Loss curve": "not-written-yet.png"}))
    assert "not-written-yet.png" in caplog.text
    assert "![Loss curve](not-written-yet.png)" in (tmp_path / "README.md").read_text(encoding="utf-8")


def test_family_line_carries_the_summary(tmp_path: Path) -> None:
    _, body = _split_card(_write(tmp_path))
    assert "- **Architecture family:** transformer: encoder-decoder Transformer (Vaswani et al. 2017)" in body
    _, plain = _split_card(_write(tmp_path / "plain", family_summary=""))
    assert re.search(r"^- \*\*Architecture family:\*\* transformer$", plain, flags=re.MULTILINE)


def test_a_placeholder_without_value_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Jinja would render an unknown name as an empty string; the card must not silently lose a section.
    template = load_model_card_template().replace("{{ results_section }}", "{{ results_sektion }}")
    monkeypatch.setattr("hf_encdec.model_card.load_model_card_template", lambda: template)
    with pytest.raises(ValueError, match="results_sektion"):
        write_model_card(tmp_path, _facts())
    assert not (tmp_path / "README.md").exists()


def test_a_sample_must_be_a_triple() -> None:
    with pytest.raises(ValueError, match="sample 1 must be"):
        _facts(samples=[("a", "b", "c"), ("a", "b")])


def test_software_messages_section_only_for_gettext_models(tmp_path: Path) -> None:
    _, plain = _split_card(_write(tmp_path))
    assert "## Software messages" not in plain
    fidelity = {"test pairs with directives or an accelerator": 812, "best hypotheses keeping them": 0.9163,
                "references keeping them": 0.9951}
    _, body = _split_card(_write(tmp_path, software_messages=fidelity))
    section = body.split("## Software messages", 1)[1].split("\n## ", 1)[0]
    assert "translate-po" in section and "msgfmt -c" in section
    assert "| best hypotheses keeping them | 0.9163 |" in section and "| test pairs with directives or an accelerator | 812 |" in section
