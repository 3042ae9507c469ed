"""Model cards and Hub upload for trained hf_encdec checkpoints.

`write_model_card` renders `hf_encdec/templates/translation.md` (a `string.Template`) into `README.md` next to a
saved model. Every number in the card comes from the arguments, the YAML front matter (language, license, tags,
`model-index`) is produced by `huggingface_hub.ModelCardData` so it follows the Hub's schema, and the rest is plain
Markdown.

`push_to_hub` uploads such a folder with `HfApi.create_repo` + `upload_folder`. It fails fast, with a
`RuntimeError` that says what is missing and how to fix it, when there is no token (no network access at all), when
offline mode is on, or when the endpoint cannot be reached within `timeout` seconds.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import logging
import math
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import huggingface_hub
from huggingface_hub import EvalResult, HfApi, ModelCardData, constants
from huggingface_hub.errors import HfHubHTTPError

logger = logging.getLogger(__name__)

__all__ = ["load_model_card_template", "push_to_hub", "render_model_card", "write_model_card"]

TEMPLATE_NAME = "translation.md"
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = ("checkpoints/*", "checkpoint-*/*", "tokenizer/*", ".staging/*", "runs/*", ".git/*", "__pycache__/*")

# Display names and Hub metric ids of metrics we know; anything else is shown under its own key.
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
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


# --------------------------------------------------------------------------------------------------- model card


def load_model_card_template(name: str = TEMPLATE_NAME) -> string.Template:
    """The model card template shipped as package data (`hf_encdec/templates/<name>`)."""
    resource = importlib.resources.files("hf_encdec") / "templates" / name
    if not resource.is_file():
        raise FileNotFoundError(
            f"model card template {name!r} is missing from the installed package (expected package data "
            "'templates/*.md' in hf_encdec)"
        )
    return string.Template(resource.read_text(encoding="utf-8"))


def _cell(value: Any) -> str:
    """One Markdown table cell: no line breaks, no column separators, no raw HTML (`</s>` would vanish)."""
    if isinstance(value, float):
        text = _format_number(value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") or " "


def _format_number(value: float | int) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"


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


def _signatures(metrics: Mapping[str, Any]) -> dict[str, str]:
    return {key: value for key, value in metrics.items() if isinstance(value, str) and "signature" in key}


def _results_section(
    metrics: Mapping[str, Any], baseline_metrics: Mapping[str, Any] | None, data_description: Mapping[str, Any]
) -> str:
    model_scores = _numeric_metrics(metrics)
    if not model_scores:
        raise ValueError(f"metrics has no numeric value to report: {dict(metrics)}")
    baseline_scores = _numeric_metrics(baseline_metrics or {})
    where = []
    if "dataset" in data_description:
        where.append(f"dataset `{data_description['dataset']}`")
    if "eval_split" in data_description:
        where.append(f"split `{data_description['eval_split']}`")
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
            if key in baseline_scores:
                base = baseline_scores[key]
                lines.append(
                    f"| {_cell(_METRIC_NAMES.get(key, key))} | {_format_number(value)} | {_format_number(base)} "
                    f"| {value - base:+.2f} |"
                )
            else:
                lines.append(f"| {_cell(_METRIC_NAMES.get(key, key))} | {_format_number(value)} | – | – |")
    else:
        lines += ["| metric | this model |", "|---|---|"]
        lines += [f"| {_cell(_METRIC_NAMES.get(key, key))} | {_format_number(value)} |" for key, value in model_scores.items()]
    signatures = _signatures(metrics)
    if signatures:
        lines.append("\nsacreBLEU signatures, for reproducing the numbers exactly:\n")
        lines += [f"- `{key}`: `{value}`" for key, value in signatures.items()]
    return "\n".join(lines)


def _samples_section(samples: Sequence[tuple[str, str, str]]) -> str:
    if not samples:
        return "_No samples were provided._"
    lines = ["| source | reference | model output |", "|---|---|---|"]
    for index, sample in enumerate(samples):
        if len(sample) != 3:
            raise ValueError(f"sample {index} must be (source, reference, hypothesis), got {len(sample)} items")
        lines.append("| " + " | ".join(_cell(text) for text in sample) + " |")
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


def _front_matter(
    *,
    model_name: str,
    family: str,
    metrics: Mapping[str, Any],
    data_description: Mapping[str, Any],
    language_pair: tuple[str, str],
    license: str,
) -> str:
    dataset = str(data_description.get("dataset", "custom"))
    split = data_description.get("eval_split")
    source_language, target_language = language_pair
    eval_results = [
        EvalResult(
            task_type="translation",
            task_name=f"Translation {source_language}-{target_language}",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split=None if split is None else str(split),
            metric_type=key,
            metric_name=_METRIC_NAMES.get(key, key),
            metric_value=float(value),
        )
        for key, value in _numeric_metrics(metrics).items()
        if key not in _NOT_IN_MODEL_INDEX
    ]
    tags = ["translation", "hf_encdec", f"hf_encdec_{family}", f"{source_language}-{target_language}"]
    card_data = ModelCardData(
        language=list(dict.fromkeys(language_pair)),
        license=license,
        library_name="transformers",
        pipeline_tag="translation",
        tags=list(dict.fromkeys(tags)),
        model_name=model_name,
        datasets=None if "dataset" not in data_description else [dataset],
        metrics=[key for key in _numeric_metrics(metrics) if key in {"bleu", "chrf", "ter"}] or None,
        eval_results=eval_results,
    )
    return card_data.to_yaml()


def render_model_card(
    *,
    model_name: str,
    family: str,
    config_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any] | None,
    data_description: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    samples: Sequence[tuple[str, str, str]],
    images: Mapping[str, str],
    language_pair: tuple[str, str],
    license: str = "apache-2.0",
    citations: Sequence[str] = (),
    model_id: str | None = None,
    max_new_tokens: int = 128,
    output_dir: str | Path = ".",
) -> str:
    """The model card text; see `write_model_card` for the arguments (`output_dir` only resolves image paths)."""
    if len(language_pair) != 2 or not all(isinstance(code, str) and code.strip() for code in language_pair):
        raise ValueError(f"language_pair must be (source, target) language codes, got {language_pair!r}")
    if not model_name.strip() or not family.strip():
        raise ValueError(f"model_name and family must be non-empty, got {model_name!r} and {family!r}")
    output_dir = Path(output_dir)
    source_language, target_language = language_pair
    training = dict(training_summary)
    training_table = _key_value_table(training, "setting", "value")
    versions = _framework_versions()
    if versions:
        training_table += "\n\nFramework versions: " + ", ".join(f"{name} {v}" for name, v in versions.items()) + "."
    example_source = samples[0][0] if samples else f"A sentence in {source_language}."
    values = {
        "front_matter": _front_matter(
            model_name=model_name,
            family=family,
            metrics=metrics,
            data_description=data_description,
            language_pair=(source_language, target_language),
            license=license,
        ).rstrip("\n"),
        "model_name": model_name,
        "family": family,
        "source_language": source_language,
        "target_language": target_language,
        "license": license,
        "config_table": _key_value_table(config_summary, "configuration", "value"),
        "model_id": model_id or output_dir.name or "path/to/model",
        "example_source": repr(example_source),
        "max_new_tokens": str(int(max_new_tokens)),
        "data_section": _key_value_table(data_description, "item", "value"),
        "training_section": training_table,
        "results_section": _results_section(metrics, baseline_metrics, data_description),
        "samples_section": _samples_section(samples),
        "images_section": _images_section(images, output_dir),
        "citations_section": _citations_section(citations),
    }
    return load_model_card_template().substitute(values)


def write_model_card(
    output_dir: str | Path,
    *,
    model_name: str,
    family: str,
    config_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    baseline_metrics: Mapping[str, Any] | None,
    data_description: Mapping[str, Any],
    training_summary: Mapping[str, Any],
    samples: Sequence[tuple[str, str, str]],
    images: Mapping[str, str],
    language_pair: tuple[str, str],
    license: str = "apache-2.0",
    citations: Sequence[str] = (),
    model_id: str | None = None,
    max_new_tokens: int = 128,
) -> Path:
    """Write `README.md` (a Hub model card) for a saved translation model into `output_dir`.

    Args:
        output_dir: the saved model folder; created if missing. An existing README.md is replaced.
        model_name: display name, also the `model-index` name.
        family: hf_encdec family (`transformer`, `rnn_seq2seq`, ...); becomes a tag `hf_encdec_<family>`.
        config_summary: configuration values worth showing (layers, hidden size, positions, ...).
        metrics: measured scores, e.g. `corpus_scores(...)` or Trainer metrics (`eval_` prefixes are dropped);
            numbers go to the results table and `model-index`, `*signature*` strings are listed verbatim.
        baseline_metrics: the copy baseline's scores (`copy_baseline_scores`), or None to omit that column.
        data_description: facts about the data; the keys `dataset` (name or Hub id) and `eval_split` also fill
            `model-index`.
        training_summary: training settings and outcome (epochs, steps, learning rate, runtime, hardware, ...).
        samples: (source, reference, hypothesis) triples; the first source also feeds the usage snippet.
        images: caption -> PNG path relative to `output_dir` (e.g. the attention heatmap and loss curve).
        language_pair: (source, target) language codes.
        license: Hub license id.
        citations: BibTeX entries of the papers behind the model (Vaswani et al. 2017, ...).
        model_id: Hub repo id used in the usage snippet; defaults to the folder name.
        max_new_tokens: generation budget shown in the usage snippet.

    Returns:
        The path of the written README.md.

    Raises:
        ValueError: empty names, a malformed language pair or sample, no numeric metric, or an image path that is
            absolute or leaves `output_dir`.
    """
    output_dir = Path(output_dir)
    text = render_model_card(
        model_name=model_name,
        family=family,
        config_summary=config_summary,
        metrics=metrics,
        baseline_metrics=baseline_metrics,
        data_description=data_description,
        training_summary=training_summary,
        samples=samples,
        images=images,
        language_pair=language_pair,
        license=license,
        citations=citations,
        model_id=model_id,
        max_new_tokens=max_new_tokens,
        output_dir=output_dir,
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "README.md"
    if path.exists():
        logger.info("replacing existing model card %s", path)
    path.write_text(text, encoding="utf-8")
    logger.info("wrote model card %s", path)
    return path


# --------------------------------------------------------------------------------------------------- Hub upload


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "could not talk to the server", whichever HTTP client huggingface_hub uses.

    huggingface_hub 1.x talks through httpx and 2.x through httpx2; both raise subclasses of their `TransportError`
    (connect errors, timeouts, proxy errors). Offline mode raises a builtin `ConnectionError`.
    """
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        transport_error = getattr(module, "TransportError", None)
        if isinstance(transport_error, type) and issubclass(transport_error, BaseException):
            errors.append(transport_error)
    return tuple(errors)


def _offline_mode() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return bool(getattr(constants, "HF_HUB_OFFLINE", False)) or env.strip().upper() in _TRUE_VALUES


def _check_endpoint(endpoint: str, token: str, timeout: float) -> dict[str, Any]:
    """Ask the endpoint who owns `token`, with a short timeout, before any upload starts.

    `create_repo` and `upload_folder` use a shared HTTP client without a timeout; this probe is what keeps a
    blackholed network from hanging the caller.
    """
    url = f"{endpoint.rstrip('/')}/api/whoami-v2"
    headers = huggingface_hub.utils.build_hf_headers(token=token)
    try:
        response = huggingface_hub.get_session().get(url, headers=headers, timeout=timeout)
    except HfHubHTTPError:
        raise
    except _transport_errors() as err:
        raise RuntimeError(
            f"cannot reach the Hugging Face Hub at {endpoint} ({type(err).__name__}: {err}). Check the network "
            "connection, proxy settings and HF_ENDPOINT, then retry; the model folder was not uploaded."
        ) from err
    if response.status_code == 401:
        raise RuntimeError(
            f"the Hub at {endpoint} rejected the token (HTTP 401). Create a token with write access at "
            "https://huggingface.co/settings/tokens and log in with `hf auth login` (older clients: "
            "`huggingface-cli login`) or export HF_TOKEN=<token>."
        )
    try:
        huggingface_hub.utils.hf_raise_for_status(response)
    except HfHubHTTPError as err:
        raise RuntimeError(f"the Hub at {endpoint} refused the token check: {err}") from err
    return response.json()


def push_to_hub(
    output_dir: str | Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload hf_encdec translation model",
    endpoint: str | None = None,
    timeout: float = 10.0,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
) -> str:
    """Create (or reuse) the model repo `repo_id` and upload the contents of `output_dir` in one commit.

    Args:
        output_dir: a saved model folder (config, weights, remote code, tokenizer, README.md, figures).
        repo_id: `user/name` or `org/name` (a bare `name` goes to the token owner's namespace).
        token: a Hub token with write access; defaults to `HF_TOKEN` or the token saved by `hf auth login`.
        private: create the repository as private (ignored if it already exists).
        commit_message: the commit message on the Hub.
        endpoint: Hub URL; defaults to `HF_ENDPOINT` (read now, not at import) or huggingface.co.
        timeout: seconds allowed for the connectivity and token check made before uploading.
        ignore_patterns: files under `output_dir` not to upload; by default Trainer checkpoints and logs.

    Returns:
        The URL of the commit on the Hub.

    Raises:
        FileNotFoundError: `output_dir` is not a folder with files in it.
        RuntimeError: offline mode is on, no token is available, the endpoint cannot be reached, the token is
            rejected, or the Hub refuses the repository or the upload; the message says how to fix it.
    """
    folder = Path(output_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        raise FileNotFoundError(f"nothing to upload: {folder} is not a folder with files in it")
    if not (folder / "README.md").is_file():
        logger.warning("%s has no README.md; write one with write_model_card before pushing", folder)
    if _offline_mode():
        raise RuntimeError(
            "cannot push to the Hub: offline mode is on (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set). "
            "Unset it and retry."
        )
    # Checked before anything touches the network: without a token there is nothing to try.
    token = token or huggingface_hub.get_token()
    if not token:
        raise RuntimeError(
            "cannot push to the Hub: no Hugging Face token found (none passed, HF_TOKEN unset, and no saved login). "
            "Create a token with write access at https://huggingface.co/settings/tokens, then run `hf auth login` "
            "(older clients: `huggingface-cli login`), export HF_TOKEN=<token>, or pass token=..."
        )
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    whoami = _check_endpoint(endpoint, token, timeout)
    logger.info("pushing %s to %s/%s as %s", folder, endpoint, repo_id, whoami.get("name", "<unknown user>"))

    api = HfApi(endpoint=endpoint, token=token)
    try:
        repo_url = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_url.repo_id,
            folder_path=str(folder),
            commit_message=commit_message,
            repo_type="model",
            ignore_patterns=list(ignore_patterns) or None,
        )
    except HfHubHTTPError as err:
        raise RuntimeError(
            f"the Hub refused the upload of {folder} to {repo_id}: {err}. Check that the token has write access "
            "to that namespace and that the repository name is valid."
        ) from err
    except _transport_errors() as err:
        raise RuntimeError(
            f"lost the connection to {endpoint} while uploading {folder} to {repo_id} ({type(err).__name__}: "
            f"{err}); retry when the network is back (already uploaded files are skipped)."
        ) from err
    logger.info("uploaded %s: %s", folder, commit.commit_url)
    return str(commit.commit_url)
