"""Model cards for trained hf_encdec translation models.

A `ModelCardFacts` holds what a card says (names, measured scores, settings, samples, figures); `write_model_card`
renders it with `huggingface_hub.ModelCard.from_template` from the Jinja template `hf_encdec/templates/translation.md`
into `README.md` next to a saved model. The YAML front matter (language, license, tags, `model-index`) comes from
`huggingface_hub.ModelCardData`, so it follows the Hub's schema; every number comes from the facts.

>>> facts = ModelCardFacts(model_name="demo", family="transformer", language_pair=("en", "de"),
...                        metrics={"bleu": 12.5, "chrf": 40.0})
>>> text = render_model_card(facts)
>>> text.splitlines()[0], "| BLEU (sacreBLEU) | 12.50 |" in text
('---', True)
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
import jinja2.meta
from huggingface_hub import EvalResult, ModelCard, ModelCardData

logger = logging.getLogger(__name__)

__all__ = ["ModelCardFacts", "load_model_card_template", "render_model_card", "write_model_card"]

TEMPLATE_NAME = "translation.md"

# Display names of metrics we know; anything else is shown under its own key.
_METRIC_NAMES: dict[str, str] = {
    "bleu": "BLEU (sacreBLEU)",
    "sacrebleu": "BLEU (sacreBLEU)",
    "chrf": "chrF (sacreBLEU)",
    "ter": "TER (sacreBLEU)",
    "gen_len": "mean generated length (tokens)",
    "loss": "loss",
}
_METRIC_PREFIXES = ("eval_", "test_", "predict_")
# Bookkeeping the Trainer and corpus_scores report next to the scores; not a quality measure.
_NOT_SCORES = {"num_segments", "epoch", "runtime", "samples_per_second", "steps_per_second", "step"}
# Shown in the results table but not a quality claim for the Hub's model-index.
_NOT_IN_MODEL_INDEX = {"gen_len"}


@dataclass(frozen=True, kw_only=True)
class ModelCardFacts:
    """Everything a translation model card states.

    Attributes:
        model_name: display name, also the `model-index` name.
        family: hf_encdec family name (`transformer`, `rnn_seq2seq`, ...); becomes a tag `hf_encdec_<family>`.
        family_summary: one line on the family, shown next to its name.
        language_pair: (source, target) language codes, or None when the data does not say (the card then gives no
            `language` metadata rather than a made-up code).
        metrics: measured scores, e.g. `corpus_scores(...)` or Trainer metrics (`eval_` prefixes are dropped);
            numbers go to the results table and `model-index`, `*signature*` strings are listed verbatim.
        baseline_metrics: the copy baseline's scores (`copy_baseline_scores`), or None to omit that column.
        configuration: configuration values worth showing, e.g. `model.config.describe()`.
        data: facts about the data, shown in the card's prose; `dataset` names it (a local folder by its base name,
            never its path) and with `eval_split` fills `model-index`. `hub_dataset_id`, only for data on the Hub,
            goes to the `datasets` metadata, which takes Hub ids only.
        training: training settings and outcome (steps, learning rate, runtime, hardware, ...).
        samples: (source, reference, hypothesis) triples; the first source also feeds the usage snippet.
        images: caption -> PNG path relative to the model folder (e.g. the attention heatmap and loss curve).
        license: Hub license id.
        citations: BibTeX entries of the papers behind the model.
        model_id: Hub repo id used in the usage snippet; defaults to the folder name.
        max_new_tokens: generation budget shown in the usage snippet.
        comparison: other systems or decoding settings measured on the same test pairs, {system: {column: value}}
            (a non-autoregressive run: its iteration counts, its teacher, speed and repetition); a table when given.
        comparison_pairs: how many test pairs (evenly spaced over the split) the comparison used; None: all of them.
        software_messages: for a model trained on gettext catalogs, the share of test translations and references
            that keep their source's format directives; when given, the card says how translations are protected.
    """

    model_name: str
    family: str
    language_pair: tuple[str, str] | None
    metrics: Mapping[str, Any]
    family_summary: str = ""
    baseline_metrics: Mapping[str, Any] | None = None
    configuration: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    samples: Sequence[tuple[str, str, str]] = ()
    images: Mapping[str, str] = field(default_factory=dict)
    license: str = "apache-2.0"
    citations: Sequence[str] = ()
    model_id: str | None = None
    max_new_tokens: int = 128
    comparison: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    comparison_pairs: int | None = None
    software_messages: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        pair = self.language_pair
        if pair is not None and (len(pair) != 2 or not all(isinstance(code, str) and code.strip() for code in pair)):
            raise ValueError(f"language_pair must be (source, target) language codes or None, got {pair!r}")
        if not self.model_name.strip() or not self.family.strip():
            raise ValueError(f"model_name and family must be non-empty, got {self.model_name!r} and {self.family!r}")
        for index, sample in enumerate(self.samples):
            if len(sample) != 3:
                raise ValueError(f"sample {index} must be (source, reference, hypothesis), got {len(sample)} items")


def load_model_card_template(name: str = TEMPLATE_NAME) -> str:
    """The text of a model card template shipped as package data (`hf_encdec/templates/<name>`)."""
    resource = importlib.resources.files("hf_encdec") / "templates" / name
    if not resource.is_file():
        raise FileNotFoundError(
            f"model card template {name!r} is missing from the installed package (expected package data "
            "'templates/*.md' in hf_encdec)"
        )
    return resource.read_text(encoding="utf-8")


def _format_number(value: float | int) -> str:
    if isinstance(value, (bool, int)) or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


def _cell(value: Any) -> str:
    """One Markdown table cell: no line breaks, no column separators, no raw HTML (`</s>` would vanish)."""
    text = _format_number(value) if isinstance(value, float) else str(value)
    text = " ".join(text.split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") or " "


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _key_value_table(values: Mapping[str, Any], key_header: str, value_header: str) -> str:
    if not values:
        return "_Not provided._"
    rows = [f"| {key_header} | {value_header} |", "|---|---|"]
    rows += [f"| {_cell(key)} | {_cell(value)} |" for key, value in values.items()]
    return "\n".join(rows)


def _metric_key(key: str) -> str:
    """`eval_bleu` and `test_bleu` are both BLEU: drop the Trainer's split prefix."""
    lowered = key.lower()
    for prefix in _METRIC_PREFIXES:
        if lowered.startswith(prefix):
            return lowered[len(prefix) :]
    return lowered


def _numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scores in `metrics`, keyed without split prefix; counts, timings and strings are left out."""
    scores = {_metric_key(key): value for key, value in metrics.items() if _is_number(value)}
    return {key: value for key, value in scores.items() if key not in _NOT_SCORES}


def _results_section(facts: ModelCardFacts) -> str:
    metrics, baseline_metrics = facts.metrics, facts.baseline_metrics
    model_scores = _numeric_metrics(metrics)
    if not model_scores:
        raise ValueError(f"metrics has no numeric value to report: {dict(metrics)}")
    baseline_scores = _numeric_metrics(baseline_metrics or {})
    where = []
    if "dataset" in facts.data:
        where.append(f"dataset `{facts.data['dataset']}`")
    if "eval_split" in facts.data:
        where.append(f"split `{facts.data['eval_split']}`")
    segments = next((value for key, value in metrics.items() if _metric_key(key) == "num_segments"), None)
    if _is_number(segments):
        where.append(f"{int(segments)} segments")
    lines = []
    if where:
        lines.append(f"Measured on {', '.join(where)}, corpus level, one reference per segment.\n")
    if baseline_metrics is not None:
        lines.append(
            "The *copy baseline* outputs each source sentence unchanged; a model must beat it to have learnt more "
            "than copying.\n"
        )
        lines += ["| metric | this model | copy baseline | difference |", "|---|---|---|---|"]
        for key, value in model_scores.items():
            name = _cell(_METRIC_NAMES.get(key, key))
            if key in baseline_scores:
                base = baseline_scores[key]
                lines.append(f"| {name} | {_format_number(value)} | {_format_number(base)} | {value - base:+.2f} |")
            else:
                lines.append(f"| {name} | {_format_number(value)} | – | – |")
    else:
        lines += ["| metric | this model |", "|---|---|"]
        lines += [f"| {_cell(_METRIC_NAMES.get(key, key))} | {_format_number(value)} |" for key, value in model_scores.items()]
    if facts.comparison:
        columns = list(dict.fromkeys(column for row in facts.comparison.values() for column in row))
        where = "the same test pairs" if facts.comparison_pairs is None else (
            f"the same {facts.comparison_pairs} test pairs, evenly spaced over the test split"
        )
        lines.append(f"\nOn {where}:\n")
        lines += ["| system | " + " | ".join(_cell(c) for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for system, row in facts.comparison.items():
            cells = [_format_number(row[c]) if _is_number(row.get(c)) else _cell(row.get(c, "–")) for c in columns]
            lines.append(f"| {_cell(system)} | " + " | ".join(cells) + " |")
    signatures = {key: value for key, value in metrics.items() if isinstance(value, str) and "signature" in key}
    if signatures:
        lines.append("\nsacreBLEU signatures, for reproducing the numbers exactly:\n")
        lines += [f"- `{key}`: `{value}`" for key, value in signatures.items()]
    return "\n".join(lines)


def _samples_section(samples: Sequence[tuple[str, str, str]]) -> str:
    if not samples:
        return "_No samples were provided._"
    lines = ["| source | reference | model output |", "|---|---|---|"]
    lines += ["| " + " | ".join(_cell(text) for text in sample) + " |" for sample in samples]
    return "\n".join(lines)


def _images_section(images: Mapping[str, str], output_dir: Path) -> str:
    if not images:
        return "_No figures were provided._"
    blocks = []
    for caption, relative in images.items():
        path = PurePosixPath(str(relative).replace(os.sep, "/"))
        if path.is_absolute() or ".." in path.parts or Path(str(relative)).is_absolute():
            raise ValueError(
                f"image {caption!r} must be a path relative to {output_dir} inside it, got {relative!r}; "
                "the card is uploaded with the folder and absolute paths do not resolve on the Hub"
            )
        if not (output_dir / path).is_file():
            logger.warning("image %r not found at %s; the card will show a broken link", caption, output_dir / path)
        alt = " ".join(str(caption).split()).replace("[", "(").replace("]", ")")
        blocks.append(f"**{_cell(caption)}**\n\n![{alt}]({path.as_posix()})")
    return "\n\n".join(blocks)


def _software_section(fidelity: Mapping[str, Any]) -> str:
    """What keeps a translated software message usable, and what was measured on the test split ("" if nothing)."""
    if not fidelity:
        return ""
    return (
        "Software messages carry format directives (`%s`, `%1$d`, `{name}`), keyboard accelerators and terminal "
        "layout that a program needs back exactly. With `hf_encdec` installed, `translate()` (by default for this "
        "model) and `hf-encdec translate-po` keep them by construction: the layout (edge newlines, `--help` "
        "columns, wrapped lines) is taken from the source, and of the beam's n-best list the first hypothesis "
        "that keeps every directive is used (then a wider search, then one that cannot end without them); a "
        "message none keeps is left untranslated in a catalog. `hf-encdec translate-po` checks its output with "
        "GNU `msgfmt -c` where gettext-tools is installed. Plain `generate()` has none of this. The test scores "
        "above, and the table below, are of the model's best hypotheses as they are, before any of this:\n\n"
        + _key_value_table(fidelity, "test split", "value")
    )


def _citations_section(citations: Sequence[str]) -> str:
    entries = [entry.strip() for entry in citations if entry.strip()]
    if not entries:
        return "_No references were given when this card was written._"
    return "```bibtex\n" + "\n\n".join(entries) + "\n```"


def _framework_versions() -> dict[str, str]:
    versions = {}
    for package in ("hf_encdec", "transformers", "torch", "tokenizers", "sacrebleu"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _card_data(facts: ModelCardFacts) -> ModelCardData:
    """The YAML front matter: Hub metadata and a `model-index` entry per measured score."""
    dataset = str(facts.data.get("dataset", "custom"))
    hub_dataset = facts.data.get("hub_dataset_id")
    split = facts.data.get("eval_split")
    pair = f"{facts.language_pair[0]}-{facts.language_pair[1]}" if facts.language_pair else None
    scores = _numeric_metrics(facts.metrics)
    eval_results = [
        EvalResult(
            task_type="translation",
            task_name=f"Translation {pair}" if pair else "Translation",
            dataset_type=str(hub_dataset) if hub_dataset else "local",
            dataset_name=dataset,
            dataset_split=None if split is None else str(split),
            metric_type=key,
            metric_name=_METRIC_NAMES.get(key, key),
            metric_value=float(value),
        )
        for key, value in scores.items()
        if key not in _NOT_IN_MODEL_INDEX
    ]
    tags = ["translation", "hf_encdec", f"hf_encdec_{facts.family}", *([pair] if pair else [])]
    return ModelCardData(
        language=list(dict.fromkeys(facts.language_pair)) if facts.language_pair else None,
        license=facts.license,
        library_name="transformers",
        pipeline_tag="translation",
        tags=list(dict.fromkeys(tags)),
        model_name=facts.model_name,
        datasets=[str(hub_dataset)] if hub_dataset else None,
        metrics=[key for key in scores if key in {"bleu", "chrf", "ter"}] or None,
        eval_results=eval_results,
    )


def render_model_card(facts: ModelCardFacts, *, output_dir: str | Path = ".") -> str:
    """The model card text for `facts`; `output_dir` is the model folder the image paths are relative to.

    Raises:
        ValueError: no numeric metric, an image path that is absolute or leaves `output_dir`, or a template
            placeholder with no value.
    """
    output_dir = Path(output_dir)
    source_language, target_language = facts.language_pair or ("the source language", "the target language")
    training_table = _key_value_table(facts.training, "setting", "value")
    versions = _framework_versions()
    if versions:
        training_table += "\n\nFramework versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()) + "."
    example_source = facts.samples[0][0] if facts.samples else f"A sentence in {source_language}."
    values = {
        "model_name": facts.model_name,
        "family": facts.family,
        "family_summary": facts.family_summary,
        "source_language": source_language,
        "target_language": target_language,
        "license": facts.license,
        "config_table": _key_value_table(facts.configuration, "configuration", "value"),
        "model_id": facts.model_id or output_dir.name or "path/to/model",
        "example_source": repr(example_source),
        "max_new_tokens": str(int(facts.max_new_tokens)),
        "data_section": _key_value_table(facts.data, "item", "value"),
        "training_section": training_table,
        "results_section": _results_section(facts),
        "samples_section": _samples_section(facts.samples),
        "images_section": _images_section(facts.images, output_dir),
        "citations_section": _citations_section(facts.citations),
        "software_section": _software_section(facts.software_messages),
    }
    template = load_model_card_template()
    # Jinja renders an unknown name as "", so a misspelt placeholder would silently leave a hole in the card.
    missing = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(template)) - {"card_data", *values}
    if missing:
        raise ValueError(
            f"the model card template uses {sorted(missing)}, which have no value; known: {sorted(values)}"
        )
    card = ModelCard.from_template(_card_data(facts), template_str=template, **values)
    return str(card).rstrip("\n") + "\n"


def write_model_card(output_dir: str | Path, facts: ModelCardFacts) -> Path:
    """Write `README.md` (a Hub model card) for the saved model in `output_dir` (created if missing; an existing
    README.md is replaced) and return its path. Raises what `render_model_card` raises, before writing anything."""
    output_dir = Path(output_dir)
    text = render_model_card(facts, output_dir=output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "README.md"
    if path.exists():
        logger.info("replacing existing model card %s", path)
    path.write_text(text, encoding="utf-8")
    logger.info("wrote model card %s", path)
    return path
