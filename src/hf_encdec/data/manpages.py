"""An English text corpus from the manual pages every Unix machine already carries.

``man`` keeps its pages under the directories ``manpath`` prints (``/usr/share/man`` on Debian and Ubuntu), one
folder per section (``man1`` user commands ... ``man8`` system administration), one gzipped roff file per page
(``ls.1.gz``, ``printf.3.gz``, ``CA.pl.1ssl.gz``, ``Foo::Bar.3pm.gz``). Converted to plain text they form a corpus of
real technical English that needs no network: a language-modelling corpus, and - with the section as the label - a
text-classification task ("is this page about a command, a system call, a C function, a file format ...?").

The module has three layers:

* :func:`roff_to_text` (:mod:`~hf_encdec.data.roff`) - renders one page with the system's ``groff``, the formatter
  ``man`` itself runs, and keeps the words a reader sees.
* :func:`build_manpages_corpus` - finds the pages, drops aliases (``.so`` redirects and symlinks), caps generated
  page families (16,631 of the 17,847 pages in ``man1`` of a machine with the Google Cloud SDK are ``gcloud_*``
  pages of near-identical boilerplate), renders the rest in parallel, drops short and duplicate pages, splits
  **by page name** into ``train`` / ``validation`` / ``test`` (``printf(1)`` and ``printf(3)`` never straddle a
  split) and puts each split in a fixed shuffled order.
* :func:`build_manpage_sections_corpus` - the same pages labelled with their section, and
  :func:`manpages_summary` - per-split statistics with the majority-class baseline, for a model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

from .roff import COMPRESSED_SUFFIXES, GroffNotFoundError, find_groff, groff_version, is_alias, read_page, roff_to_text

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAN_SECTIONS",
    "SECTION_NAMES",
    "GroffNotFoundError",
    "ManPage",
    "ManPagesNotFoundError",
    "build_manpage_sections_corpus",
    "build_manpages_corpus",
    "default_man_dirs",
    "find_groff",
    "find_man_pages",
    "manpages_summary",
    "roff_to_text",
]

DEFAULT_MAN_SECTIONS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8")
"""The eight traditional sections; ``man9`` (kernel routines), ``mann`` (Tcl) and ``manl`` (local) are left out."""

SECTION_NAMES: dict[str, str] = {
    "1": "user commands",
    "2": "system calls",
    "3": "library functions",
    "4": "special files",
    "5": "file formats",
    "6": "games",
    "7": "overviews and conventions",
    "8": "system administration",
}
"""What each section holds, as ``man(1)`` names them."""

_FALLBACK_MAN_DIR = "/usr/share/man"

#: Drop reasons recorded in the build report, in the order the build applies them.
_DROP_REASONS: tuple[str, ...] = tuple("shadowed symlink family_cap unreadable redirect too_short duplicate".split())

_CACHE_VERSION = 2  # part of the cache key: bump it when the conversion or the build rules change


class ManPagesNotFoundError(FileNotFoundError):
    """Raised when no manual page exists in the searched directories.

    The message names the directories searched, says which layout was expected (``<dir>/man<N>/<page>.<N>.gz``),
    how to install pages or point at other directories, and which corpora need no manual pages.
    """


@dataclass(frozen=True, order=True)
class ManPage:
    """One manual page file.

    Attributes:
        name: The page name: the file name without the compression suffix and the section extension
            (``CA.pl.1ssl.gz`` -> ``CA.pl``, ``Foo::Bar.3pm.gz`` -> ``Foo::Bar``).
        section: The section of the directory the file lies in (``man3`` -> ``"3"``, also for ``.3pm`` files).
        path: The file (may be a symlink).
    """

    name: str
    section: str
    path: Path


def default_man_dirs() -> list[Path]:
    """Return the manual page directories of this machine that exist.

    Asked in this order: ``manpath`` (man-db's own search path, with a timeout), the ``MANPATH`` environment
    variable, then ``/usr/share/man``. Duplicates are removed, order is kept.
    """
    candidates: list[str] = []
    manpath = shutil.which("manpath")
    if manpath is not None:
        try:
            result = subprocess.run([manpath], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            logger.debug("manpath failed: %s", error)
        else:
            if result.returncode == 0:
                candidates = [entry for entry in result.stdout.strip().split(":") if entry]
    if not candidates:
        candidates = [entry for entry in os.environ.get("MANPATH", "").split(":") if entry]
    if not candidates:
        candidates = [_FALLBACK_MAN_DIR]
    found: list[Path] = []
    for entry in candidates:
        path = Path(entry)
        if path.is_dir() and path not in found:
            found.append(path)
    return found


def _page_name(filename: str, section: str) -> str | None:
    """Return the page name of ``<name>.<section>[suffix][.gz]``, or ``None`` if the file is not such a page."""
    base = filename
    for suffix in COMPRESSED_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    name, dot, extension = base.rpartition(".")
    if not dot or not name or not extension.startswith(section):
        return None
    return name


def _find_man_pages(man_dirs: Sequence[Path], sections: Sequence[str]) -> tuple[list[ManPage], int]:
    """Find the pages, the first directory winning a name+section found twice; return ``(pages, shadowed)``."""
    pages: dict[tuple[str, str], ManPage] = {}
    shadowed = 0
    for root in man_dirs:
        for section in sections:
            folder = Path(root) / f"man{section}"
            if not folder.is_dir():
                continue
            try:
                entries = sorted(folder.iterdir())
            except OSError as error:
                logger.warning("man pages: cannot list %s (%s)", folder, error)
                continue
            for path in entries:
                name = _page_name(path.name, section)
                if name is None or not path.is_file():  # is_file follows symlinks: dangling links are skipped
                    continue
                if (section, name) in pages:
                    shadowed += 1
                    continue
                pages[(section, name)] = ManPage(name=name, section=section, path=path)
    return sorted(pages.values(), key=lambda page: (page.section, page.name)), shadowed


def find_man_pages(
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
) -> list[ManPage]:
    """Find the manual page files under ``<dir>/man<section>/``.

    Args:
        man_dirs: Roots to search (default: :func:`default_man_dirs`); roots that do not exist are skipped.
        sections: Section directories to read (``"3"`` reads ``man3``, whose pages may be ``.3``, ``.3pm``, ...).

    Returns:
        The pages sorted by ``(section, name)``. A page is ``<name>.<ext>[.gz|.bz2|.xz]`` whose extension starts
        with the section (``ls.1.gz``, ``Foo::Bar.3pm.gz``); its section is the directory's. A name found twice in
        one section (in two roots, or as ``foo.3`` and ``foo.3pm``) keeps the first: earlier root, then file name.
    """
    dirs = default_man_dirs() if man_dirs is None else [Path(root) for root in man_dirs]
    return _find_man_pages(dirs, sections)[0]


def _read_and_convert(path: str, groff: str) -> tuple[str, str]:
    """Read and render one page; return ``("ok", text)``, ``("redirect", "")`` or ``("unreadable", reason)``."""
    try:
        source = read_page(path)
        return ("redirect", "") if is_alias(source) else ("ok", roff_to_text(source, groff=groff))
    except GroffNotFoundError:
        raise
    except (OSError, EOFError, ValueError, lzma.LZMAError) as error:  # gzip/bz2 raise OSError/EOFError/ValueError
        return "unreadable", f"{type(error).__name__}: {error}"
    except RuntimeError as error:  # groff failed on this page; one odd page must not stop a build of thousands
        return "unreadable", str(error)


def _family(name: str) -> str:
    """The family of a page: its name up to the first ``_``, ``-`` or ``.`` (``gcloud_compute_ssh`` -> ``gcloud``)."""
    return re.split(r"[_.-]", name.lstrip("_.-"), maxsplit=1)[0] or name


def _stable_rank(name: str, salt: str) -> str:
    """Order key for a page: a SHA-256 digest, identical on every machine and Python run (unlike ``hash()``)."""
    return hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()


def _split_of(name: str, salt: str, validation_fraction: float, test_fraction: float) -> str:
    """The split of a page name: a uniform number from its SHA-256, so it depends on nothing but name and salt."""
    position = int(_stable_rank(name, salt)[:16], 16) / 2**64
    if position < test_fraction:
        return "test"
    if position < test_fraction + validation_fraction:
        return "validation"
    return "train"


def _missing_pages_message(dirs: Sequence[Path], sections: Sequence[str], reason: str) -> str:
    searched = ", ".join(str(root) for root in dirs) or "(none)"
    folders = ", ".join(f"man{section}" for section in sections)
    return (
        f"No manual pages found: {reason}. Searched: {searched} (layout <dir>/man<N>/<page>.<N>.gz, sections "
        f"{folders}); no man<N>/*.gz page was found there. Install them (Debian/Ubuntu: `apt-get install man-db "
        "manpages manpages-dev`; minimal container images delete /usr/share/man - see "
        "/etc/dpkg/dpkg.cfg.d/excludes and `unminimize`), or pass man_dirs=[...] pointing at folders that hold "
        "man1..man8. Corpora that need no manual pages: 'gettext:de' (or another language), 'synthetic:reverse', "
        "'synthetic:copy'."
    )


@dataclass
class _BuildReport:
    """Counts collected while building the corpus, for the log and the dataset description."""

    man_dirs: list[str] = field(default_factory=list)
    found: int = 0
    kept_by_section: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    capped_families: dict[str, int] = field(default_factory=dict)

    def as_dict(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "corpus": "manpages",
            "man_dirs": self.man_dirs,
            "options": options,
            "pages_found": self.found,
            "kept_by_section": dict(sorted(self.kept_by_section.items())),
            "dropped": {reason: self.dropped.get(reason, 0) for reason in _DROP_REASONS},
            "capped_families": self.capped_families,
        }


def _check_options(family_cap: int | None, validation_fraction: float, test_fraction: float, min_words: int) -> None:
    if family_cap is not None and family_cap < 1:
        raise ValueError(f"family_cap must be a positive number of pages or None, got {family_cap}")
    if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise ValueError(
            "validation_fraction and test_fraction must be in [0, 1) with a sum below 1 (the rest is train), got "
            f"{validation_fraction} and {test_fraction}"
        )
    if min_words < 0:
        raise ValueError(f"min_words must be >= 0, got {min_words}")


def _resolve_symlinks(pages: list[ManPage], report: _BuildReport) -> list[ManPage]:
    """Keep one page per real file: the page that is the file itself, else the first in sorted order."""
    by_target: dict[str, list[ManPage]] = {}
    for page in pages:
        by_target.setdefault(os.path.realpath(page.path), []).append(page)
    kept: list[ManPage] = []
    for group in by_target.values():
        own = [page for page in group if not page.path.is_symlink()]
        kept.append(own[0] if own else group[0])
        report.dropped["symlink"] += len(group) - 1
    return sorted(kept, key=lambda page: (page.section, page.name))


def _cap_families(pages: list[ManPage], family_cap: int | None, salt: str, report: _BuildReport) -> list[ManPage]:
    """Keep at most ``family_cap`` pages of each (section, family), chosen by a stable hash of the name."""
    if family_cap is None:
        return pages
    families: dict[tuple[str, str], list[ManPage]] = {}
    for page in pages:
        families.setdefault((page.section, _family(page.name)), []).append(page)
    kept: list[ManPage] = []
    for (section, family), members in families.items():
        if len(members) > family_cap:
            members = sorted(members, key=lambda page: _stable_rank(page.name, f"{salt}\x00family_cap"))
            report.dropped["family_cap"] += len(members) - family_cap
            report.capped_families[f"{family}({section})"] = len(members)
            logger.info("man pages: family %s(%s) has %d pages, keeping %d", family, section, len(members), family_cap)
            members = members[:family_cap]
        kept.extend(members)
    return sorted(kept, key=lambda page: (page.section, page.name))


def _convert_all(pages: list[ManPage], num_proc: int | None, groff: str) -> list[tuple[str, str]]:
    """Read and render the pages, ``num_proc`` groff processes at a time (default: one a CPU core)."""
    paths = [str(page.path) for page in pages]
    workers = max(1, min(len(paths), (os.cpu_count() or 1) if num_proc is None else num_proc))
    # threads suffice: each waits on its own groff process
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_read_and_convert, paths, [groff] * len(paths))
        bar = tqdm(results, total=len(paths), desc="groff", unit="page", disable=len(paths) < 100, mininterval=2)
        return list(bar)


def _shuffled(columns: dict[str, dict[str, list[str]]], salt: str) -> dict[str, dict[str, list[str]]]:
    """Each split in a fixed shuffled order, so that its first rows are a sample of it rather than section 1.

    The order is by SHA-256 of the salt and the page: the same on every machine and run, and a page's place
    relative to another does not depend on which other pages exist.
    """
    shuffled: dict[str, dict[str, list[str]]] = {}
    for split, split_columns in columns.items():
        pages = zip(split_columns["name"], split_columns["section"])
        keys = [_stable_rank(f"{section}\x00{name}", f"{salt}\x00order") for name, section in pages]
        order = sorted(range(len(keys)), key=keys.__getitem__)
        shuffled[split] = {column: [values[index] for index in order] for column, values in split_columns.items()}
    return shuffled


def _cache_key(pages: list[ManPage], options: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, "options": options}, sort_keys=True).encode())
    for page in pages:
        try:
            stat = os.stat(page.path)
        except OSError:
            continue
        digest.update(
            f"{page.section}\x00{page.name}\x00{page.path}\x00{stat.st_size}\x00{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()[:24]


def _build_rows(
    *,
    man_dirs: Sequence[str | os.PathLike[str]] | None,
    sections: Sequence[str],
    family_cap: int | None,
    validation_fraction: float,
    test_fraction: float,
    split_salt: str,
    min_words: int,
    num_proc: int | None,
    cache_dir: str | os.PathLike[str] | None,
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """The rows of :func:`build_manpages_corpus` in ``(section, name)`` order: ``(columns by split, report)``."""
    _check_options(family_cap, validation_fraction, test_fraction, min_words)
    started = time.perf_counter()
    if man_dirs is None:
        dirs = default_man_dirs()
        searched = dirs or [Path(_FALLBACK_MAN_DIR)]
        if not dirs:
            raise ManPagesNotFoundError(_missing_pages_message(searched, sections, "no manual page directory exists"))
    else:
        searched = [Path(root) for root in man_dirs]
        dirs = [root for root in searched if root.is_dir()]
        if not dirs:
            raise ManPagesNotFoundError(
                _missing_pages_message(searched, sections, "none of the given directories exists")
            )
    options = {
        "sections": list(sections),
        "family_cap": family_cap,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "split_salt": split_salt,
        "min_words": min_words,
    }
    report = _BuildReport(man_dirs=[str(root) for root in dirs])
    pages, report.dropped["shadowed"] = _find_man_pages(dirs, sections)
    report.found = len(pages)
    if not pages:
        raise ManPagesNotFoundError(_missing_pages_message(searched, sections, "the directories hold no pages"))

    groff = find_groff()  # before any work: without groff there is no corpus
    options["groff"] = groff_version(groff)  # in the cache key: another groff may render differently
    cache_file: Path | None = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"manpages-{_cache_key(pages, options)}.json"
        if cache_file.is_file():
            try:
                cached = json.loads(cache_file.read_text(encoding="utf-8"))
                logger.info("man pages: loaded the corpus from the cache %s", cache_file)
                return cached["columns"], cached["report"]
            except (OSError, ValueError, KeyError) as error:
                logger.warning("man pages: ignoring the unreadable cache %s (%s)", cache_file, error)

    pages = _resolve_symlinks(pages, report)
    pages = _cap_families(pages, family_cap, split_salt, report)
    results = _convert_all(pages, num_proc, groff)

    columns: dict[str, dict[str, list[str]]] = {
        split: {"name": [], "section": [], "text": []} for split in ("train", "validation", "test")
    }
    seen_texts: set[str] = set()
    for page, (status, text) in zip(pages, results):
        if status == "unreadable":
            logger.warning("man pages: skipping %s: %s", page.path, text)
            report.dropped["unreadable"] += 1
        elif status == "redirect":
            report.dropped["redirect"] += 1
        elif len(text.split()) < min_words:
            report.dropped["too_short"] += 1
        elif text in seen_texts:
            report.dropped["duplicate"] += 1
        else:
            seen_texts.add(text)
            split = _split_of(page.name, split_salt, validation_fraction, test_fraction)
            columns[split]["name"].append(page.name)
            columns[split]["section"].append(page.section)
            columns[split]["text"].append(text)
            report.kept_by_section[page.section] += 1
    if not seen_texts:
        raise ValueError(
            f"No manual page survived the filters: {report.found} pages found under "
            f"{', '.join(report.man_dirs)}, dropped {dict(report.dropped)} (min_words={min_words})"
        )
    report_dict = report.as_dict(options)
    report_dict["seconds"] = round(time.perf_counter() - started, 2)
    sizes = ", ".join(f"{split}={len(split_columns['name'])}" for split, split_columns in columns.items())
    counts = f"kept {report_dict['kept_by_section']}, dropped {report_dict['dropped']}, pages {sizes}"
    logger.info("man pages: %d found, %s (%.1f s)", report.found, counts, report_dict["seconds"])
    for split, split_columns in columns.items():
        if not split_columns["name"]:
            logger.warning("man pages: the %s split is empty; raise its fraction or add pages", split)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps({"columns": columns, "report": report_dict}), encoding="utf-8")
            os.replace(partial, cache_file)
        except OSError as error:
            logger.warning("man pages: could not write the cache %s (%s)", cache_file, error)
    return columns, report_dict


def build_manpages_corpus(
    *,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
    family_cap: int | None = 200,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    split_salt: str = "hf_encdec-manpages",
    min_words: int = 20,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    shuffle: bool = True,
) -> datasets.DatasetDict:
    """Build a plain-text corpus from the machine's manual pages.

    Rules, in order (each drop is counted under the name in brackets):

    1. Pages: every ``<dir>/man<section>/<name>.<section>*[.gz]`` (:func:`find_man_pages`); a name found again
       in the same section - in a later directory, or as another file - is left out [shadowed].
    2. Aliases: symlinks to a file already taken are dropped [symlink] (the page that is the file itself is kept).
    3. Family cap: pages whose names share the part before the first ``_``, ``-`` or ``.`` form a family per
       section (``gcloud_compute_ssh`` -> ``gcloud``, ``git-commit`` -> ``git``). Of a family larger than
       ``family_cap``, ``family_cap`` pages are kept, chosen by SHA-256 of the name (not the alphabetical first)
       [family_cap]. This runs before any page is read, so thousands of generated pages cost nothing.
    4. Reading: files that cannot be read or decompressed, or that groff fails on [unreadable]; pages that are
       only ``.so other/page`` [redirect]. The rest is rendered with :func:`roff_to_text` (``.so`` includes read
       from the man root, as ``man`` does).
    5. Filters: pages with fewer than ``min_words`` words [too_short]; pages whose text equals an earlier one in
       ``(section, name)`` order [duplicate].
    6. Split by page **name**: a page goes to ``test`` if the SHA-256 of ``split_salt`` + name, read as a number in
       [0, 1), is below ``test_fraction``, to ``validation`` if below ``test_fraction + validation_fraction``, else
       to ``train``. The split of a page depends only on its name: the same on every machine and run, unchanged
       when other pages come or go, and the same for ``printf(1)`` and ``printf(3)``.
    7. Order: each split is shuffled by SHA-256 of ``split_salt`` + section + name, so that its first rows (what
       ``--max_eval_samples`` takes) are a sample of the split, not the pages of section 1. ``shuffle=False``
       keeps ``(section, name)`` order. Only the order changes: a page's split is rule 6's either way.

    The build report - directories, options, pages found, pages kept per section, drops per reason, capped
    families - is stored as JSON in every split's ``info.description`` (``json.loads`` it, or read it with
    :func:`manpages_summary`), and logged.

    Args:
        man_dirs: Roots holding ``man1``..``man8`` (default: :func:`default_man_dirs`). Missing roots are skipped.
        sections: Section directories to read.
        family_cap: Most pages kept per (section, family); ``None`` keeps all.
        validation_fraction: Expected share of page names in ``validation``.
        test_fraction: Expected share of page names in ``test``.
        split_salt: Changes which names are held out (and which family members are kept), deterministically.
        min_words: Drop pages with fewer whitespace-separated words than this.
        num_proc: groff processes run at once (default ``os.cpu_count()``).
        cache_dir: If given, the built rows are stored there as JSON, keyed by a hash of the options, the groff
            version and every found file's path, size and modification time, and reused while nothing changed.
        shuffle: Put each split in its fixed shuffled order (rule 7); ``False`` for ``(section, name)`` order.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and string columns ``name``,
        ``section`` (the directory's section, ``"3"`` also for ``.3pm`` pages) and ``text``.

    Raises:
        ManPagesNotFoundError: If no given directory exists or they hold no page of ``sections``.
        GroffNotFoundError: If ``groff`` is not installed (the message says how to install it).
        ValueError: If an option is out of range or no page survives the filters.
    """
    columns, report = _build_rows(
        man_dirs=man_dirs,
        sections=sections,
        family_cap=family_cap,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        split_salt=split_salt,
        min_words=min_words,
        num_proc=num_proc,
        cache_dir=cache_dir,
    )
    columns = _shuffled(columns, split_salt) if shuffle else columns
    features = datasets.Features({name: datasets.Value("string") for name in ("name", "section", "text")})
    description = json.dumps(report, sort_keys=True)
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                split_columns, features=features, info=datasets.DatasetInfo(description=description, features=features)
            )
            for split, split_columns in columns.items()
        }
    )


def build_manpage_sections_corpus(
    *,
    max_words: int | None = 256,
    min_pages_per_section: int = 30,
    man_dirs: Sequence[str | os.PathLike[str]] | None = None,
    sections: Sequence[str] = DEFAULT_MAN_SECTIONS,
    family_cap: int | None = 200,
    validation_fraction: float = 0.05,
    test_fraction: float = 0.05,
    split_salt: str = "hf_encdec-manpages",
    min_words: int = 20,
    num_proc: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    shuffle: bool = True,
) -> datasets.DatasetDict:
    """Build a text-classification corpus: which section does a manual page belong to?

    The pages, filters, split and order are those of :func:`build_manpages_corpus` (same keyword arguments), so a
    page is in the same split in both corpora. The text is the page's from its start (the ``NAME`` heading; the ``.TH``
    header with the section number is never part of it), cut to its first ``max_words`` whitespace-separated
    words and re-joined with single spaces (line breaks are not kept). Sections with fewer than
    ``min_pages_per_section`` pages in the whole corpus are dropped (logged, and listed under
    ``"dropped_sections"`` in the JSON of ``info.description``); ``section 6`` has one page on a typical server.

    Args:
        max_words: Words kept from the start of each page (``None``: the whole page).
        min_pages_per_section: Fewest pages (over all splits) a section needs to become a class.
        man_dirs, sections, family_cap, validation_fraction, test_fraction, split_salt, min_words, num_proc,
            cache_dir, shuffle: As for :func:`build_manpages_corpus`.

    Returns:
        A ``datasets.DatasetDict`` with splits ``train``, ``validation``, ``test`` and columns ``name`` (string),
        ``text`` (string) and ``label`` (``datasets.ClassLabel`` whose names are the kept section numbers, sorted).

    Raises:
        ManPagesNotFoundError, GroffNotFoundError: As for :func:`build_manpages_corpus`.
        ValueError: If an option is out of range or no section has ``min_pages_per_section`` pages.
    """
    if max_words is not None and max_words < 1:
        raise ValueError(f"max_words must be positive or None, got {max_words}")
    if min_pages_per_section < 1:
        raise ValueError(f"min_pages_per_section must be >= 1, got {min_pages_per_section}")
    columns, report = _build_rows(
        man_dirs=man_dirs,
        sections=sections,
        family_cap=family_cap,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        split_salt=split_salt,
        min_words=min_words,
        num_proc=num_proc,
        cache_dir=cache_dir,
    )
    columns = _shuffled(columns, split_salt) if shuffle else columns
    counts: Counter[str] = Counter()
    for split_columns in columns.values():
        counts.update(split_columns["section"])
    label_names = sorted(section for section, count in counts.items() if count >= min_pages_per_section)
    dropped_sections = {section: count for section, count in sorted(counts.items()) if section not in label_names}
    if not label_names:
        raise ValueError(
            f"No section has min_pages_per_section={min_pages_per_section} pages (pages per section: "
            f"{dict(sorted(counts.items()))}); lower min_pages_per_section or add man_dirs"
        )
    if dropped_sections:
        logger.info(
            "man page sections: dropping sections with fewer than %d pages: %s",
            min_pages_per_section,
            ", ".join(f"{section} ({count} pages)" for section, count in dropped_sections.items()),
        )
    report = {
        **report,
        "task": "section classification",
        "label_names": label_names,
        "dropped_sections": dropped_sections,
        "max_words": max_words,
        "min_pages_per_section": min_pages_per_section,
    }
    description = json.dumps(report, sort_keys=True)
    features = datasets.Features(
        {
            "name": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=label_names),
        }
    )
    label_ids = {section: index for index, section in enumerate(label_names)}
    splits: dict[str, datasets.Dataset] = {}
    for split, split_columns in columns.items():
        rows: dict[str, list[Any]] = {"name": [], "text": [], "label": []}
        for name, section, text in zip(split_columns["name"], split_columns["section"], split_columns["text"]):
            if section not in label_ids:
                continue
            words = text.split()
            rows["name"].append(name)
            rows["text"].append(" ".join(words if max_words is None else words[:max_words]))
            rows["label"].append(label_ids[section])
        splits[split] = datasets.Dataset.from_dict(
            rows, features=features, info=datasets.DatasetInfo(description=description, features=features)
        )
    return datasets.DatasetDict(splits)


def manpages_summary(corpus: datasets.DatasetDict) -> dict[str, Any]:
    """Per-split statistics of a corpus from :func:`build_manpages_corpus` or :func:`build_manpage_sections_corpus`.

    Args:
        corpus: A ``datasets.DatasetDict`` with a ``text`` column and a ``section`` column or a ``label``
            (``ClassLabel``) column.

    Returns:
        ``{"splits": {split: {"pages", "words", "sections": {section: pages}}}, "sections": {section: pages},
        "build_report": dict}``; for a corpus with ``label`` also ``"label_names"``, ``"class_balance"``
        (``{split: {label name: pages}}``), ``"majority_class"`` (the most frequent label in ``train``, ties to
        the lower label id) and ``"majority_baseline"`` (``{"validation": accuracy, "test": accuracy}`` of always
        predicting it; ``None`` for an empty split).
    """
    splits: dict[str, dict[str, Any]] = {}
    totals: Counter[str] = Counter()
    labelled = "label" in next(iter(corpus.values())).column_names if corpus else False
    label_names: list[str] = []
    labels_by_split: dict[str, list[int]] = {}
    report: dict[str, Any] = {}
    for split, dataset in corpus.items():
        if labelled:
            label_names = list(dataset.features["label"].names)
            labels_by_split[split] = [int(label) for label in dataset["label"]]
            sections = [label_names[label] for label in labels_by_split[split]]
        else:
            sections = list(dataset["section"]) if "section" in dataset.column_names else []
        counts = Counter(sections)
        totals.update(counts)
        splits[split] = {
            "pages": dataset.num_rows,
            "words": sum(len(text.split()) for text in dataset["text"]),
            "sections": dict(sorted(counts.items())),
        }
        if not report:
            try:
                report = json.loads(dataset.info.description or "{}")
            except ValueError:
                report = {"description": dataset.info.description}
    summary: dict[str, Any] = {"splits": splits, "sections": dict(sorted(totals.items())), "build_report": report}
    if labelled:
        train_counts = Counter(labels_by_split.get("train", []))
        majority = min(train_counts, key=lambda label: (-train_counts[label], label)) if train_counts else None
        summary["label_names"] = label_names
        summary["class_balance"] = {
            split: {label_names[label]: count for label, count in sorted(Counter(labels).items())}
            for split, labels in labels_by_split.items()
        }
        summary["majority_class"] = None if majority is None else label_names[majority]
        summary["majority_baseline"] = {
            split: (
                round(sum(label == majority for label in labels_by_split[split]) / len(labels_by_split[split]), 4)
                if labels_by_split.get(split) and majority is not None
                else None
            )
            for split in ("validation", "test")
            if split in labels_by_split
        }
    return summary
