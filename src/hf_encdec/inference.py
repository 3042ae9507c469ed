"""Loading a trained folder and translating with it: length-sorted batches, beam settings, a progress bar.

>>> from hf_encdec.inference import load_translator, translate      # doctest: +SKIP
>>> model, tokenizer = load_translator("runs/gettext-de")             # doctest: +SKIP
>>> translate(model, tokenizer, ["Open the file", "Quit"], num_beams=4)  # doctest: +SKIP
['Datei öffnen', 'Beenden']
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
import os
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from .data import gettext_extras
from .data.tokenizer import check_tokenizer_matches_model
from .evaluation.metrics import mbr_order
from .localization.catalog import FillReport, fill_catalog_with
from .localization.layout import split_layout
from .localization.placeholders import DirectivesBeforeEnd, find_placeholders, keeps_placeholders
from .models.speculative import HypothesisLookupDrafter, SourceLookupDrafter
from .models.transformers_contract import no_hub_kernels
from .pipelines import Seq2SeqGenerationPipeline
from .speed import speed_up

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def undecodable_characters(text: str, source: str = "") -> list[str]:
    """The characters of `text` that no translation holds unless its `source` does.

    U+FFFD is what a byte-level tokenizer's decoder writes for an invalid UTF-8 sequence: a byte token the model put
    where no character can begin or go on (``Caf\\xc3-`` reads ``Caf\ufffd-``), or a hypothesis cut mid-character
    by ``max_new_tokens``. Lone surrogates (U+D800-U+DFFF) have no UTF-8 encoding at all, and NUL ends a C string, so
    a catalog or a program cannot carry either. Each counts only beyond as many as the source has.

    >>> undecodable_characters("Caf\ufffd- geschlossen", "Café closed")
    ['\ufffd']
    >>> undecodable_characters("Ersatzzeichen \ufffd", "replacement character \ufffd")
    []
    """
    found = Counter(char for char in text if char in "\ufffd\x00" or "\ud800" <= char <= "\udfff")
    if found:
        found.subtract(Counter(char for char in source if char in found))
    return sorted((+found).elements())


def is_autoregressive(model: PreTrainedModel) -> bool:
    """Whether `model` writes one token after another (every family but the non-autoregressive one)."""
    return getattr(model, "generation_cache", "key_value") != "none"


def check_model_folder(path: str | Path) -> Path:
    """Raise a clear error when `path` is not a complete saved model (config, weights, tokenizer)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist; give the output folder of a finished training run")
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append("model.safetensors")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer.json")
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete model folder: missing {', '.join(missing)}. A training run writes them at the "
            "end; an interrupted run can be resumed (TrainOptions(resume=True) with the same output folder)"
        )
    return folder


def load_translator(
    path: str | Path, *, device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer of a saved seq2seq folder, checked against each other, in eval mode, with the speed paths
    (`hf_encdec.speed.speed_up`; `HF_ENCDEC_SPEED_PATHS=0` loads the plain model)."""
    folder = check_model_folder(path)
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(folder, **no_hub_kernels())
    except Exception as error:  # safetensors, json and torch each raise their own types for a damaged file
        raise RuntimeError(f"could not load the model in {folder} (corrupt or partial files?): {error}") from error
    tokenizer = AutoTokenizer.from_pretrained(folder)
    check_tokenizer_matches_model(tokenizer, model.config)
    options = folder / "train_options.json"
    if getattr(model.config, "training_data", None) is None and options.is_file():
        # folders trained before the config recorded its data
        model.config.training_data = json.loads(options.read_text()).get("data")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return speed_up(model).to(device).eval(), tokenizer


def load_drafter(
    draft: str | Path | PreTrainedModel, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The drafter of speculative decoding for `model`: ``"source"`` (source lookup, no second model), a loaded
    drafter, or the run folder of a NAT drafter trained with `tokenizer`'s vocabulary (refused otherwise).

    A CMLM NAT's run drafts by continuing each accepted prefix in one parallel pass; ``"lookup:RUN"``, and any CTC
    NAT's run, drafts through the NAT's translation of the source, made once a sentence and looked up like the
    source (`HypothesisLookupDrafter`)."""
    if not is_autoregressive(model):
        raise ValueError(f"draft={draft!r}: {type(model).__name__} decodes in parallel already; drafting speeds up "
                         "the autoregressive families")
    if isinstance(draft, PreTrainedModel):
        return draft
    if str(draft) == "source":
        return SourceLookupDrafter.for_target(model).to(model.device)
    through_hypothesis = str(draft).startswith("lookup:")
    folder = check_model_folder(str(draft).removeprefix("lookup:"))
    drafter, drafter_tokenizer = load_translator(folder, device=model.device)
    if drafter_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"the drafter in {folder} ({type(drafter).__name__}) has another tokenizer than the target "
            f"{type(model).__name__} ({len(drafter_tokenizer)} and {len(tokenizer)} tokens): make the drafter from "
            "the target's run (`hf-encdec distill`, then `hf-encdec train --preset nat-... --data <distilled>`)"
        )
    if through_hypothesis or getattr(drafter.config, "is_ctc", False):
        return HypothesisLookupDrafter.for_target(model, drafter).to(model.device)
    return drafter


def trained_on_software_messages(model: PreTrainedModel) -> bool:
    """Whether `model` was trained on gettext catalogs (its config's `training_data`, set by the training recipe)."""
    return str(getattr(model.config, "training_data", "")).startswith("gettext")


def translate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    num_beams: int | None = None,
    max_new_tokens: int = 128,
    length_penalty: float | None = None,
    batch_size: int = 64,
    max_source_length: int | None = None,
    progress: bool = True,
    protect: bool | None = None,
    draft: str | Path | PreTrainedModel | None = None,
    **generate_kwargs: object,
) -> list[str]:
    """Translate `texts`, longest first in batches of `batch_size` (little padding), returned in input order.

    A thin wrapper over the `seq2seq-generation` pipeline (:class:`~hf_encdec.pipelines.Seq2SeqGenerationPipeline`),
    which tokenizes, pads, generates greedily or with beams (no sampling) and decodes. Sources longer than
    `max_source_length` tokens are truncated (with a warning), as are sources longer than the model's learned
    positions. `num_beams` and `length_penalty` default to the model's generation config (a trained folder's beam
    size and validation-tuned length penalty).

    With `protect` (the default for models trained on gettext catalogs, see :func:`trained_on_software_messages`),
    texts are software messages: their layout and format directives are kept by construction, as
    :func:`translate_messages` describes; a text no hypothesis keeps them in comes back as the source itself (with a
    warning that counts them). `protect=False` gives the model's best hypothesis as it is
    (:func:`translate_unprotected`).

    Either way no translation holds a character decoded from an invalid byte sequence (U+FFFD, see
    :func:`undecodable_characters`): such a hypothesis is passed over for the next one, and a text with none left
    comes back as the source, counted in the warning.

    ``mbr=N`` chooses each text's translation by minimum Bayes risk among at least N beam hypotheses (expected chrF
    against each other, :func:`translate_nbest`) instead of taking the highest-scoring one; the checks above then
    run over that order.

    `draft` turns on lossless speculative decoding (greedy, one text at a time, the same output as without it):
    ``"source"`` (source lookup), a NAT drafter's run folder, or a loaded drafter (:func:`load_drafter`).
    """
    if isinstance(texts, str):
        raise TypeError("translate() takes a list of strings; wrap a single sentence in a list")
    if draft is not None:
        beams = num_beams or model.generation_config.num_beams or 1
        if beams != 1:
            raise ValueError(
                f"draft={draft!r} speeds up greedy decoding only (the same output as without it): got num_beams="
                f"{beams}; pass num_beams=1"
            )
        num_beams, batch_size = 1, 1  # transformers' assisted generation decodes one source at a time
        generate_kwargs["assistant_model"] = load_drafter(draft, model, tokenizer)
    if generate_kwargs.get("num_return_sequences", 1) != 1:
        raise ValueError("translate() returns one translation a text; for the n-best list use translate_nbest()")
    if protect is None:
        protect = trained_on_software_messages(model)
    settings = dict(num_beams=num_beams, max_new_tokens=max_new_tokens, length_penalty=length_penalty,
                    batch_size=batch_size, max_source_length=max_source_length, progress=progress, **generate_kwargs)
    if protect:
        results = translate_messages(model, tokenizer, texts, **settings)
        reason = "kept their format directives and layout and decoded to valid text"
    else:
        results = translate_unprotected(model, tokenizer, texts, **settings)
        reason = "decoded to valid text (U+FFFD: an invalid byte sequence)"
    kept = sum(result is None for result in results)
    if kept:
        logger.warning("%d of %d text(s) kept as the source: no hypothesis %s", kept, len(texts), reason)
    return [text if result is None else result for text, result in zip(texts, results)]


def translate_unprotected(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    num_beams: int | None = None,
    retry_beams: int | None = None,
    **settings: object,
) -> list[str | None]:
    """The model's best hypothesis of each text as it is, unless it holds a character decoded from an invalid byte
    sequence (:func:`undecodable_characters`).

    Such a text takes the first hypothesis without one from its n-best list, then from a wider search, as
    :func:`translate_messages` searches; ``None`` where none has one. Texts whose best hypothesis decodes cleanly are
    searched once, exactly as :func:`translate_nbest` with one hypothesis a text. Keyword arguments are those of
    :func:`translate_nbest`.
    """
    best = [hypotheses[0] for hypotheses in translate_nbest(model, tokenizer, texts, num_beams=num_beams, **settings)]
    damaged = list(dict.fromkeys(text for text, hypothesis in zip(texts, best) if undecodable_characters(hypothesis, text)))
    if not damaged:
        return list(best)
    chosen, _ = _search(model, tokenizer, damaged, lambda text, hypothesis: True, num_beams=num_beams,
                        retry_beams=retry_beams, **settings)
    logger.info("%d of %d text(s) had a best hypothesis with U+FFFD; %d found a clean one", len(damaged), len(texts),
                sum(chosen[text] is not None for text in damaged))
    return [chosen[text] if text in chosen else hypothesis for text, hypothesis in zip(texts, best)]


def _search(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    accept: Callable[[str, str], bool],
    *,
    num_beams: int | None,
    retry_beams: int | None,
    **settings: object,
) -> tuple[dict[str, str | None], Counter[str]]:
    """The first hypothesis of each text that decodes cleanly and that `accept(text, hypothesis)` takes: of the
    n-best list at `num_beams`, then (autoregressive models) of a wider search; ``None`` where none does. Also how each
    text was settled (``best``, ``n-best``, ``wider``)."""
    beams = num_beams or model.generation_config.num_beams or 1
    chosen: dict[str, str | None] = dict.fromkeys(texts)
    settled: Counter[str] = Counter()
    searches = [beams, max(retry_beams or 2 * beams, 8)] if is_autoregressive(model) else [beams]
    for stage, search_beams in enumerate(searches):
        missing = [text for text in texts if chosen[text] is None]
        if not missing:
            break
        # The non-autoregressive model has no n-best list: its one output per text is checked.
        returned = search_beams if is_autoregressive(model) else 1
        # The retry scores with a neutral length penalty: a tuned penalty above 1 favours long hypotheses, and at a
        # wider beam it fills the n-best list with runaway repetitions.
        # A wider search is a beam search, which a drafter cannot speed up: it runs without one.
        retry = {"length_penalty": 1.0, "assistant_model": None} if stage else {}
        nbest = translate_nbest(model, tokenizer, missing, num_beams=search_beams, num_return_sequences=returned,
                                **{**settings, **retry})
        for text, hypotheses in zip(missing, nbest):
            rank = next((rank for rank, hypothesis in enumerate(hypotheses)
                         if not undecodable_characters(hypothesis, text) and accept(text, hypothesis)), None)
            if rank is not None:
                chosen[text] = hypotheses[rank]
                settled[("best" if rank == 0 else "n-best") if stage == 0 else "wider"] += 1
    return chosen, settled


def translate_messages(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    messages: Sequence[str],
    *,
    num_beams: int | None = None,
    retry_beams: int | None = None,
    counts: Counter[str] | None = None,
    **settings: object,
) -> list[str | None]:
    """Translate software messages keeping their layout and their format directives by construction.

    1. Layout: each message is split by :func:`~hf_encdec.localization.layout.split_layout` (edge whitespace and
       newlines, ``--help`` columns, wrapped lines), the texts are translated and the layout is put back around them.
    2. Directives: beam search returns its whole n-best list (`num_beams` hypotheses, best first); the first that
       keeps the text's directives and accelerator exactly (:func:`~hf_encdec.localization.placeholders.keeps_placeholders`)
       is taken. Texts where none does are searched again with `retry_beams` beams (default twice the beam, at
       least 8; scored with length penalty 1), and those still failing once more with a :class:`~hf_encdec.localization.placeholders.DirectivesBeforeEnd`
       constraint: no hypothesis may end while one of the text's directives is missing.
    3. A message is returned only when the whole of it passes the same check against its source; otherwise
       ``None``: the caller decides (:func:`translate` keeps the source, a catalog leaves the entry untranslated).

    `counts`, when given, is incremented with how each distinct text was settled: ``best`` (the best hypothesis kept
    the directives), ``n-best`` (a later one of the first n-best list), ``wider``, ``constrained``, ``none``. Other
    keyword arguments are those of :func:`translate_nbest`.

    >>> model, tokenizer = load_translator("runs/main")                                   # doctest: +SKIP
    >>> translate_messages(model, tokenizer, ["Cannot open %s: %s\\n"])                     # doctest: +SKIP
    ['%s kann nicht geöffnet werden: %s\\n']
    """
    layouts = [split_layout(message) for message in messages]
    texts = list(dict.fromkeys(text for layout in layouts for text in layout.texts))

    def passes(text: str, hypothesis: str) -> bool:
        return bool(hypothesis.strip()) and keeps_placeholders(text, hypothesis) and not undecodable_characters(hypothesis, text)

    chosen, settled = _search(model, tokenizer, texts, passes, num_beams=num_beams, retry_beams=retry_beams, **settings)
    if is_autoregressive(model):
        beams = num_beams or model.generation_config.num_beams or 1
        wide = max(retry_beams or 2 * beams, 8)
        for text in [text for text in texts if chosen[text] is None]:
            hypotheses = _constrained_nbest(model, tokenizer, text, wide, **{**settings, "length_penalty": 1.0})
            chosen[text] = next((h for h in hypotheses if passes(text, h)), None)
            settled["constrained" if chosen[text] is not None else "none"] += 1
    else:
        settled["none"] += sum(chosen[text] is None for text in texts)
    if counts is not None:
        counts.update(settled)
    logger.info("directives of %d distinct texts kept by: %s", len(texts), dict(settled))
    results: list[str | None] = []
    for message, layout in zip(messages, layouts):
        parts = [chosen[text] for text in layout.texts]
        rendered = None if None in parts else layout.render(parts)  # type: ignore[arg-type]
        results.append(rendered if rendered is not None and passes(message, rendered) else None)
    return results


def _constrained_nbest(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: str, beams: int, **settings: object
) -> list[str]:
    """The n-best list of one text, searched so that no hypothesis ends before it has all of the text's directives."""
    unknown = tokenizer.unk_token_id
    if unknown is not None and any(unknown in tokenizer(directive, add_special_tokens=False)["input_ids"]
                                   for directive in find_placeholders(text)):
        return []  # a directive the tokenizer cannot spell: no hypothesis can end with it
    constraint = DirectivesBeforeEnd(text, tokenizer, eos_token_id=model.generation_config.eos_token_id)
    # a caller's own logits processors (generate's `logits_processor`) run too, before the constraint
    processors = LogitsProcessorList([*(settings.get("logits_processor") or []), constraint])
    settings = {key: value for key, value in settings.items() if key not in ("progress", "logits_processor")}
    return translate_nbest(model, tokenizer, [text], num_beams=beams, num_return_sequences=beams, progress=False,
                           logits_processor=processors, **settings)[0]


def translate_nbest(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    num_beams: int | None = None,
    max_new_tokens: int = 128,
    length_penalty: float | None = None,
    batch_size: int = 64,
    max_source_length: int | None = None,
    progress: bool = True,
    mbr: int | None = None,
    **generate_kwargs: object,
) -> list[list[str]]:
    """The hypotheses of every text (``num_return_sequences`` of them, best first), in input order.

    The batching, truncation and defaults of :func:`translate`, which is this with one hypothesis a text.

    With `mbr` (minimum Bayes risk decoding), beam search returns at least `mbr` hypotheses a text (the beam widened
    to hold them) and they are re-ordered by expected chrF against each other
    (:func:`~hf_encdec.evaluation.mbr_order`) before the first ``num_return_sequences`` are returned; ``translate(...,
    mbr=8)`` thus gives each text's consensus translation among 8. Autoregressive models only.
    """
    if isinstance(texts, str):
        raise TypeError("translate() takes a list of strings; wrap a single sentence in a list")
    if mbr is not None:
        return _mbr_nbest(model, tokenizer, texts, mbr, num_beams=num_beams, max_new_tokens=max_new_tokens,
                          length_penalty=length_penalty, batch_size=batch_size, max_source_length=max_source_length,
                          progress=progress, **generate_kwargs)
    if generate_kwargs.get("coverage_penalty") is not None and not getattr(model, "copies_source", False):
        raise ValueError(
            f"coverage_penalty re-ranks hypotheses by their copy attention, which {type(model).__name__} does not have "
            f"(a pointer-generator, or an RNN with copy_mechanism=True, does); leave it out for this model"
        )
    if not texts:
        return []
    limit = max_source_length
    if getattr(model.config, "position_type", None) == "learned":
        limit = min(limit or model.config.max_position_embeddings, model.config.max_position_embeddings)
    tokenizer_kwargs = {"truncation": True, "max_length": limit} if limit is not None else {}
    # Token lengths only order the batches and count the cut sources; the pipeline tokenizes again for the model.
    lengths = [len(ids) for ids in tokenizer(list(texts), **tokenizer_kwargs)["input_ids"]]
    if limit is not None:
        cut = sum(length >= limit for length in lengths)
        if cut:
            logger.warning("%d source(s) were cut to %d tokens", cut, limit)
    search = {key: value for key, value in (("num_beams", num_beams), ("length_penalty", length_penalty)) if value is not None}
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    translator = Seq2SeqGenerationPipeline(model=model, tokenizer=tokenizer, device=model.device)
    # A generator input makes the pipeline stream its outputs (in input order), so the bar moves as batches finish.
    outputs = translator(
        (texts[i] for i in order),
        batch_size=batch_size,
        tokenizer_kwargs=tokenizer_kwargs,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        **search,
        **generate_kwargs,
    )
    bar = tqdm(outputs, total=len(texts), desc="translating", unit="sent", disable=not progress)
    results: list[list[str]] = [[] for _ in texts]
    for output, index in zip(bar, order):  # the bar first, so that it sees the end of the outputs and closes
        results[index] = [hypothesis["generated_text"] for hypothesis in output]
    return results


def _mbr_nbest(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    mbr: int,
    *,
    num_beams: int | None,
    **settings: object,
) -> list[list[str]]:
    """:func:`translate_nbest` with minimum Bayes risk re-ordering over a pool of at least `mbr` hypotheses."""
    if isinstance(mbr, bool) or not isinstance(mbr, int) or mbr < 2:
        raise ValueError(f"mbr={mbr!r}: give how many hypotheses to choose among, an integer of at least 2 (or None)")
    if not is_autoregressive(model):
        raise ValueError(
            f"mbr={mbr}: minimum Bayes risk chooses among an n-best list, and {type(model).__name__} writes one "
            "output a text; leave mbr out for this model"
        )
    wanted = int(settings.pop("num_return_sequences", 1))  # type: ignore[call-overload]
    pool = max(mbr, wanted)
    beams = max(num_beams or model.generation_config.num_beams or 1, pool)
    nbest = translate_nbest(model, tokenizer, texts, num_beams=beams, num_return_sequences=pool, **settings)
    return [[hypotheses[i] for i in mbr_order(hypotheses)][:wanted] for hypotheses in nbest]


def gettext_target_language(model: PreTrainedModel) -> str | None:
    """The language a model trained on ``gettext:<lang>`` (or ``gettext+man:<lang>``, ...) translates into, else
    ``None``."""
    data = str(getattr(model.config, "training_data", "") or "")
    kind, _, lang = data.partition(":")
    return lang if gettext_extras(kind) is not None and lang else None


def fill_catalog(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    language: str | None = None,
    overwrite: bool = False,
    protect: bool = True,
    **translate_kwargs: object,
) -> FillReport:
    """Fill the untranslated entries of a gettext catalog with a trained model: what ``hf-encdec translate-po`` runs.

    The catalog work (checks, plural forms, the writer that changes nothing but the filled msgstrs) is
    :func:`hf_encdec.localization.catalog.fill_catalog_with`; this gives it the model's translations.

    Args:
        model, tokenizer: A trained translation model (:func:`load_translator`). A model trained on
            ``gettext:<lang>`` refuses a catalog in another language.
        input_path: A ``.po`` catalog or a ``.pot`` template.
        output_path: Where the filled catalog goes (may be `input_path`; it is replaced only once complete).
        language: The catalog's language; needed for a template, checked against a catalog's header.
        overwrite: Translate entries that already have a translation too.
        protect: Keep layout and format directives by construction (:func:`translate_messages`); ``False`` writes the
            model's best hypothesis as it is (for comparison: such a catalog fails ``msgfmt -c``), except one with
            U+FFFD, which gives way to the next (:func:`translate_unprotected`).
        translate_kwargs: ``num_beams``, ``batch_size``, ``max_new_tokens``, ``progress``, ... of :func:`translate`.
    """

    def translate_texts(sources: list[str]) -> list[str | None]:
        if protect:
            return translate_messages(model, tokenizer, sources, **translate_kwargs)
        # an empty hypothesis is no translation: the entry stays untranslated
        return [output or None for output in translate_unprotected(model, tokenizer, sources, **translate_kwargs)]

    return fill_catalog_with(translate_texts, input_path, output_path, language=language, overwrite=overwrite,
                             model_language=gettext_target_language(model))
