"""Data for hf_encdec: corpora as ``datasets.DatasetDict`` (``train``/``validation``/``test``) and tokenizers.

One entry point, :func:`load_corpus`, turns a short spec into a corpus:

* ``"gettext"`` or ``"gettext:<lang>"`` - English -> ``<lang>`` pairs from the machine's gettext catalogs
  (:func:`~hf_encdec.data.gettext_corpus.build_gettext_corpus`, default language ``de``);
* ``"gettext+man:<lang>"`` - the same, its training split joined by the English -> ``<lang>`` pairs of the machine's
  translated manual pages (:func:`~hf_encdec.data.manpages_parallel.build_manpages_parallel`; the pages of the
  validation and test packages left out);
* ``"gettext+vim:<lang>"`` - the gettext corpus, its training split joined by vim's own catalog, which vim keeps
  outside share/locale (:func:`~hf_encdec.data.gettext_corpus.build_extra_catalog_pairs`); ``"gettext+man+vim:<lang>"``
  joins both. A joined pair whose English is a validation or test message is left out: the held-out splits are
  those of ``"gettext:<lang>"``;
* ``"synthetic:<task>"`` - a generated toy task (:func:`~hf_encdec.data.synthetic.load_synthetic`): ``copy``,
  ``reverse``, ``sort``, ``shift``, ``duplicate``;
* a path to a ``.json``/``.jsonl``/``.csv``/``.tsv`` file, or to a folder with ``train.<ext>`` (and optionally
  ``validation.<ext>``, ``test.<ext>``) - the user's parallel data
  (:func:`~hf_encdec.data.files.load_parallel_files`).

Every corpus has string columns ``source`` and ``target``; the gettext corpus adds ``package`` and ``context``.

Monolingual and labelled text, for the masked/causal LM and classification scripts in ``examples/``, comes from the
machine's manual pages, rendered with groff (:mod:`~hf_encdec.data.manpages`): :func:`build_manpages_corpus`
(``name``, ``section``, ``text``) and :func:`build_manpage_sections_corpus` (``text`` and the section as ``label``).

Every corpus comes out with each split in a fixed shuffled order, so that the first rows of a split (what
``--max_eval_samples`` takes) are a sample of it: the gettext and manual page splits are ordered by a salted
SHA-256 of each row, synthetic rows come in the order drawn, and splits cut from a user's file in the order of the
seeded shuffle that cut them. A file the user gives for a split keeps its order.
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import datasets

from .files import DATA_FILE_EXTENSIONS, find_split_files, load_parallel_files
from .gettext_corpus import (
    GettextCatalogNotFoundError,
    available_gettext_languages,
    build_extra_catalog_pairs,
    build_gettext_corpus,
    gettext_corpus_summary,
    read_mo_file,
    vim_locale_dirs,
)
from .manpages import (
    GroffNotFoundError,
    ManPagesNotFoundError,
    build_manpage_sections_corpus,
    build_manpages_corpus,
    manpages_summary,
)
from .manpages_parallel import build_manpages_parallel
from .synthetic import SYNTHETIC_TASKS, load_synthetic
from .tokenizer import (
    SPECIAL_TOKENS,
    check_tokenizer_matches_model,
    iter_corpus_texts,
    segment_with_bpe_dropout,
    tokenize_pairs,
    tokenizer_fingerprint,
    train_tokenizer,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DATA_FILE_EXTENSIONS",
    "SPECIAL_TOKENS",
    "SYNTHETIC_TASKS",
    "GettextCatalogNotFoundError",
    "GroffNotFoundError",
    "ManPagesNotFoundError",
    "available_gettext_languages",
    "build_gettext_corpus",
    "build_manpage_sections_corpus",
    "build_manpages_corpus",
    "check_tokenizer_matches_model",
    "corpus_label",
    "gettext_corpus_summary",
    "gettext_extras",
    "iter_corpus_texts",
    "build_manpages_parallel",
    "load_corpus",
    "load_parallel_files",
    "load_synthetic",
    "manpages_summary",
    "read_mo_file",
    "segment_with_bpe_dropout",
    "tokenize_pairs",
    "tokenizer_fingerprint",
    "train_tokenizer",
]


def _valid_forms() -> str:
    """Describe the specs :func:`load_corpus` accepts."""
    return (
        "'gettext' (German), 'gettext:<lang>' (e.g. 'gettext:fr'), 'gettext+man:<lang>' (with manual pages), "
        "'gettext+vim:<lang>' (with vim's catalog), 'gettext+man+vim:<lang>', "
        f"'synthetic:<task>' with task in {', '.join(sorted(SYNTHETIC_TASKS))}, "
        f"or a path to a data file ({', '.join(DATA_FILE_EXTENSIONS)}) or to a folder with train.<ext>"
    )


FILES_LABEL = "files"
#: what a gettext spec can join to its training split, after "gettext+": the translated manual pages, vim's catalog
GETTEXT_EXTRAS = ("man", "vim")


def gettext_extras(kind: str) -> tuple[str, ...] | None:
    """The joins of a gettext spec's kind, the part before ':' (``"gettext+man+vim"`` -> ``("man", "vim")``,
    ``"gettext"`` -> ``()``); None where `kind` is no gettext spec (a file name, an unknown or repeated join).

    >>> gettext_extras("gettext+man"), gettext_extras("gettext"), gettext_extras("gettext+man+man"), gettext_extras("gettext-pairs.tsv")
    (('man',), (), None, None)
    """
    first, *extras = kind.split("+")
    if first != "gettext" or any(extra not in GETTEXT_EXTRAS for extra in extras) or len(set(extras)) < len(extras):
        return None
    return tuple(extras)


def corpus_label(spec: str | os.PathLike[str]) -> str:
    """What kind of corpus `spec` names, without naming anything of the machine it was read on.

    A trained model's config keeps this label (`training_data`): ``gettext:<lang>`` (the language filled in for a
    bare ``gettext``) tells ``translate()`` to protect the directives of software messages, ``synthetic:<task>`` names
    a toy task, and ``files`` stands for any local data file or folder, whose path is the user's business. The spec
    is parsed as :func:`load_corpus` parses it, so a file named ``gettext-pairs.tsv`` is ``files``.

    >>> corpus_label("gettext"), corpus_label("gettext:fr"), corpus_label("gettext+man+vim:de"), corpus_label("synthetic:copy")
    ('gettext:de', 'gettext:fr', 'gettext+man+vim:de', 'synthetic:copy')
    >>> corpus_label("/home/alice/work/heldout"), corpus_label("gettext-pairs.tsv")
    ('files', 'files')
    """
    text = os.fspath(spec)
    kind, _, argument = text.partition(":")
    if gettext_extras(kind) is not None:
        # the language build_gettext_corpus reads when the spec names none
        return f"{kind}:{argument or inspect.signature(build_gettext_corpus).parameters['lang'].default}"
    if kind == "synthetic":
        return text
    return FILES_LABEL


def _joined_to_training(corpus: datasets.DatasetDict, pairs: datasets.Dataset, what: str) -> datasets.DatasetDict:
    """`corpus` (gettext) with `pairs` after its training pairs, less those of a package named like a validation or
    test package and those whose English is a validation or test message: the held-out splits stay unseen."""
    held_out = {name for split in ("validation", "test") for name in corpus[split]["package"]}
    unseen = {source for split in ("validation", "test") for source in corpus[split]["source"]}
    pairs = pairs.cast(corpus["train"].features)
    kept = pairs.filter(lambda row: row["source"] not in unseen and row["package"] not in held_out)
    if kept.num_rows < pairs.num_rows:
        logger.info("left out %d %s pairs of a held-out package or whose English is a validation or test message",
                    pairs.num_rows - kept.num_rows, what)
    train = datasets.concatenate_datasets([corpus["train"], kept], info=corpus["train"].info)
    return datasets.DatasetDict({**corpus, "train": train})


def _with_man_pages(
    corpus: datasets.DatasetDict, lang: str, man_dirs: list[str | os.PathLike[str]] | None = None
) -> datasets.DatasetDict:
    """`corpus` (gettext) with the translated manual pages' pairs after its training pairs; the pages named like a
    validation or test package are left out, and so is a pair whose English is a validation or test message."""
    held_out = {name for split in ("validation", "test") for name in corpus[split]["package"]}
    return _joined_to_training(corpus, build_manpages_parallel(lang, man_dirs=man_dirs, exclude=held_out), "manual page")


def _with_vim_catalog(
    corpus: datasets.DatasetDict, lang: str, locale_dirs: list[str | os.PathLike[str]] | None = None
) -> datasets.DatasetDict:
    """`corpus` (gettext) with the pairs of vim's own catalog after its training pairs (see `_joined_to_training`)."""
    roots = vim_locale_dirs() if locale_dirs is None else locale_dirs
    return _joined_to_training(corpus, build_extra_catalog_pairs(lang, roots), "vim catalog")


def load_corpus(spec: str | os.PathLike[str], **kwargs: Any) -> datasets.DatasetDict:
    """Load a corpus from a spec string (see the module docstring for the forms).

    Args:
        spec: ``"gettext"``, ``"gettext:<lang>"``, ``"gettext+man:<lang>"``, ``"gettext+vim:<lang>"``,
            ``"gettext+man+vim:<lang>"``, ``"synthetic:<task>"``, or a file or folder path.
        **kwargs: Passed to the loader: :func:`build_gettext_corpus` (``num_test_packages``, ...),
            :func:`load_synthetic` (``vocab``, ``train_size``, ``seed``, ...) or :func:`load_parallel_files`
            (``source_column``, ``validation_file``, ...).

    Returns:
        A ``DatasetDict`` with splits ``train``, ``validation``, ``test`` and at least ``source``/``target``.

    Raises:
        ValueError: For a spec of none of the forms (the valid forms are listed) or an unknown synthetic task.
        FileNotFoundError: For a missing data file or a language without catalogs.
    """
    text = os.fspath(spec)
    kind, _, argument = text.partition(":")
    extras = gettext_extras(kind)
    if extras is not None:
        if argument:
            if "lang" in kwargs and kwargs["lang"] != argument:
                raise ValueError(f"spec {text!r} names language {argument!r} but lang={kwargs['lang']!r} was passed")
            kwargs["lang"] = argument
        corpus = build_gettext_corpus(**kwargs)
        lang = kwargs.get("lang", "de")
        if "man" in extras:
            corpus = _with_man_pages(corpus, lang)
        if "vim" in extras:
            corpus = _with_vim_catalog(corpus, lang)
        return corpus
    if kind == "synthetic":
        if not argument:
            raise ValueError(f"spec 'synthetic' needs a task: {', '.join(f'synthetic:{n}' for n in SYNTHETIC_TASKS)}")
        return load_synthetic(argument, **kwargs)
    path = Path(text)
    if path.is_dir():
        files = find_split_files(path)
        return load_parallel_files(
            files["train"], validation_file=files.get("validation"), test_file=files.get("test"), **kwargs
        )
    if path.is_file() or path.suffix.lower() in DATA_FILE_EXTENSIONS:
        return load_parallel_files(path, **kwargs)  # a missing file raises FileNotFoundError naming it
    raise ValueError(f"Unknown corpus spec {text!r}; valid forms: {_valid_forms()}")
