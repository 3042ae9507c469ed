"""Pages through groff and the man page corpora, on a man tree written in the test and on the machine's own pages."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
from pathlib import Path

import datasets
import pytest

from hf_encdec.data import manpages
from hf_encdec.data.manpages import (
    GroffNotFoundError,
    ManPage,
    ManPagesNotFoundError,
    build_manpage_sections_corpus,
    build_manpages_corpus,
    default_man_dirs,
    find_groff,
    find_man_pages,
    manpages_summary,
    roff_to_text,
)
from hf_encdec.data.roff import is_alias, read_page

SYSTEM_MAN1 = Path("/usr/share/man/man1")

FOO_FAMILY = [f"foo_{letter}" for letter in "abcdefghijkl"]  # 12 generated pages in man1
FAMILY_CAP = 5


def page_source(name: str, section: str, topic: str) -> str:
    """A small man(7) page of about 40 words, all of them specific to ``name``."""
    sentences = " ".join(f"Sentence {index} tells how {name} handles {topic}." for index in range(5))
    return (
        f'.TH {name.upper()} {section} "2024-01-01" "test" "Test Manual"\n'
        f".SH NAME\n{name} \\- {topic}\n"
        f".SH DESCRIPTION\n.B {name}\nis documented here.\n{sentences}\n"
    )


def write_page(root: Path, section: str, filename: str, source: str) -> Path:
    """Write ``<root>/man<section>/<filename>`` gzipped and return its path."""
    folder = root / f"man{section}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_bytes(gzip.compress(source.encode()))
    return path


@pytest.fixture
def man_tree(tmp_path: Path) -> Path:
    """A man tree with every case the builder must handle.

    man1: ls, cat, grep, printf, copy, cp (the same text as copy), tiny (too short), vdir (``.so`` redirect to ls),
    dir (symlink to ls.1.gz), foo_a..foo_l (a generated family of 12), bar-one and bar-two (a family of 2).
    man3: printf, Foo::Bar (a ``.3pm`` page), malloc, foo_x (family foo, but in another section).
    man5: passwd (the only page of its section). man8: mount, fdisk.
    """
    root = tmp_path / "man"
    for name in ["ls", "cat", "grep", "printf", "copy", "bar-one", "bar-two", *FOO_FAMILY]:
        write_page(root, "1", f"{name}.1.gz", page_source(name, "1", f"the {name} command"))
    write_page(root, "1", "cp.1.gz", page_source("copy", "1", "the copy command"))
    write_page(root, "1", "tiny.1.gz", ".TH TINY 1\n.SH NAME\ntiny \\- too short\n")
    write_page(root, "1", "vdir.1.gz", '.\\" an alias page\n.so man1/ls.1\n')
    os.symlink("ls.1.gz", root / "man1" / "dir.1.gz")
    for name, filename in [
        ("printf", "printf.3.gz"),
        ("Foo::Bar", "Foo::Bar.3pm.gz"),
        ("malloc", "malloc.3.gz"),
        ("foo_x", "foo_x.3.gz"),
    ]:
        write_page(root, "3", filename, page_source(name, "3", f"the {name} function"))
    write_page(root, "5", "passwd.5.gz", page_source("passwd", "5", "the password file"))
    for name in ["mount", "fdisk"]:
        write_page(root, "8", f"{name}.8.gz", page_source(name, "8", f"the {name} tool"))
    return root


def build(root: Path, **overrides: object) -> datasets.DatasetDict:
    """Build the text corpus of a fixture tree with test-sized options."""
    options: dict[str, object] = {
        "man_dirs": [root],
        "family_cap": FAMILY_CAP,
        "validation_fraction": 0.3,
        "test_fraction": 0.3,
        "num_proc": 1,
    }
    options.update(overrides)
    return build_manpages_corpus(**options)  # type: ignore[arg-type]


def split_of_pages(corpus: datasets.DatasetDict) -> dict[tuple[str, str], str]:
    """``{(name, section): split}`` over a text corpus."""
    return {
        (name, section): split
        for split, dataset in corpus.items()
        for name, section in zip(dataset["name"], dataset["section"])
    }


def report(corpus: datasets.DatasetDict) -> dict[str, object]:
    return json.loads(corpus["train"].info.description)


# --- roff_to_text: groff --------------------------------------------------------------------------------------

TITLE = '.TH T 1 "2024-01-01" "test" "Test Manual"\n'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            ".SH NAME\nls \\- list \\fBdirectory\\fR \\fIcontents\\fP\n",
            "NAME ls - list directory contents",
            id="fonts",
        ),
        pytest.param(".BR ls (1),\n.B two words\n.IR file .txt\n", "ls(1), two words file.txt", id="font-macros"),
        pytest.param(
            ".TP\n.B \\-a\nshow all\n.TP\n\\fB\\-l\\fR\nlong\nformat\n", "-a show all -l long format", id="TP-tags"
        ),
        pytest.param(
            ".de XX\n.B \\\\$1\nmacro body \\\\$2\n..\nbefore\n.XX one two\nafter\n",
            "before one macro body two after",
            id="user-macro",
        ),
        pytest.param(".ds Yy hello\n\\*(Yy world \\*(lqquoted\\*(rq\n", "hello world “quoted”", id="strings"),
        pytest.param(
            "a\\(emb \\[em] \\(aq \\(dq \\(bu \\(co \\e \\& \\s-1small\\s0 \\h'3m'x \\[u00E9]\n",
            "a—b — ' \" • © \\ small x é",
            id="escapes",
        ),
        pytest.param(
            ".ie n \\{\\\nnroff text\n.\\}\n.el \\{\\\ntroff text\n.\\}\n.if t troff only\n.if n nroff only\n",
            "nroff text nroff only",
            id="conditionals-for-a-terminal",
        ),
        pytest.param(
            ".TS\nallbox tab(:);\nl l\nl l.\nName:Value\nalpha:1\n_\nT{\nlong text\nhere\nT}:2\n.TE\nafter\n",
            "Name Value alpha 1 long text here 2 after",
            id="table",
        ),
        pytest.param('.\\" a comment line\ntext \\" trailing comment\nmore\n', "text more", id="comments"),
    ],
)
def test_roff_to_text_keeps_the_words_in_order_and_drops_the_markup(body: str, expected: str) -> None:
    text = roff_to_text(TITLE + body)
    assert " ".join(text.split()) == expected
    assert not set(text) & {"\b", "\x1b", "\\f", "│", "─"}


def test_roff_to_text_keeps_headings_paragraphs_and_table_rows_as_lines() -> None:
    text = roff_to_text(
        TITLE + ".SH NAME\nfoo \\- bar\n.SH DESCRIPTION\nfirst\nparagraph\n.PP\nsecond\n"
        ".TS\nbox tab(:);\nl l.\nName:Value\nalpha:1\n.TE\n"
    )
    assert text.split("\n\n")[:3] == ["NAME\nfoo - bar", "DESCRIPTION\nfirst paragraph", "second"]
    assert "Name Value\nalpha 1" in text


def test_roff_to_text_drops_the_header_and_footer_that_name_the_section() -> None:
    for source in (
        '.TH PRINTF 3 "2024-05-06" "Linux man-pages 6.7" "Library Functions Manual"\n.SH NAME\nprintf \\- format\n',
        ".Dd May 6, 2024\n.Dt PRINTF 3\n.Os Linux\n.Sh NAME\n.Nm printf\n.Nd format\n",
    ):
        text = roff_to_text(source)
        assert text.startswith("NAME\nprintf ") and text.endswith("format")
        for header_or_footer in ("3", "PRINTF", "Library", "Linux", "2024"):
            assert header_or_footer not in text


def machine_page(name: str, contains: str) -> Path:
    """A page of this machine's manual whose source holds ``contains`` (skip the test when there is none)."""
    for path in sorted(SYSTEM_MAN1.parent.glob(f"man?/{name}")):
        if contains in read_page(path):
            return path
    pytest.skip(f"no page {name} with {contains!r} under {SYSTEM_MAN1.parent}")


@pytest.mark.parametrize(
    ("name", "contains"), [("ls.1.gz", ".TH"), ("*.1.gz", ".Dd"), ("*.[57].gz", ".TS")], ids=["man", "mdoc", "table"]
)
def test_real_pages_of_the_machine_render_to_plain_text(name: str, contains: str) -> None:
    path = machine_page(name, contains)
    text = roff_to_text(read_page(path))
    assert text.startswith("NAME\n"), text[:200]
    assert len(text.split()) > 50
    assert not set(text) & {"\b", "\x1b", "│", "─", "┌"}  # no overstriking, colour or table rules
    requests = re.compile(r"[.'](TH|SH|SS|PP|TP|IP|B|I|BR|TS|TE|T\{|Dd|Dt|Sh|Nm|Nd|It|Bl|El|Fl|Ar)( |$)")
    assert not [line for line in text.split("\n") if requests.match(line) or re.search(r"\\f[BIRP]", line)]
    assert "" not in [paragraph.strip() for paragraph in text.split("\n\n")]  # blank lines collapse to one


def test_missing_groff_says_what_to_install(man_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a real PATH without groff: what a machine without it has
    with pytest.raises(GroffNotFoundError, match="apt-get install groff-base"):
        build(man_tree)
    with pytest.raises(GroffNotFoundError, match="'groff' was not found"):
        roff_to_text(TITLE)
    with pytest.raises(GroffNotFoundError, match="no-such-groff"):
        find_groff(str(tmp_path / "no-such-groff"))


def test_read_page_resolves_includes_from_the_man_root_in_any_compression(tmp_path: Path) -> None:
    root = tmp_path / "man"
    (root / "man1").mkdir(parents=True)
    (root / "man1" / "shared.1.xz").write_bytes(lzma.compress(b"Shared text about options.\n"))
    page = root / "man1" / "tool.1.bz2"
    page.write_bytes(
        bz2.compress((TITLE + ".SH NAME\ntool \\- caf\xe9\n.so man1/shared.1\n.so man1/missing.1\n").encode("latin-1"))
    )
    source = read_page(page)
    assert "Shared text about options." in source and ".so" not in source
    assert roff_to_text(source) == "NAME\ntool - café Shared text about options."
    alias = write_page(root, "1", "alias.1.gz", '.\\" an alias\n.so man1/tool.1\n')
    assert is_alias(read_page(alias)) and not is_alias(source)


# --- finding pages -----------------------------------------------------------------------------------------------


def test_find_man_pages_takes_the_section_of_the_directory_and_the_first_root(man_tree: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shadow = write_page(other, "1", "ls.1.gz", page_source("ls", "1", "another ls"))
    write_page(other, "1", "extra.1.gz", page_source("extra", "1", "an extra page"))
    pages = find_man_pages([man_tree, other, tmp_path / "missing"])
    by_key = {(page.name, page.section): page for page in pages}
    assert by_key[("Foo::Bar", "3")] == ManPage("Foo::Bar", "3", man_tree / "man3" / "Foo::Bar.3pm.gz")
    assert by_key[("ls", "1")].path == man_tree / "man1" / "ls.1.gz"
    assert by_key[("ls", "1")].path != shadow
    assert ("extra", "1") in by_key
    assert ("printf", "1") in by_key and ("printf", "3") in by_key
    assert pages == sorted(pages, key=lambda page: (page.section, page.name))
    assert find_man_pages([man_tree], sections=("5",)) == [ManPage("passwd", "5", man_tree / "man5" / "passwd.5.gz")]


def test_default_man_dirs_reads_manpath_variable_without_the_manpath_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    monkeypatch.setattr(manpages.shutil, "which", lambda name: None)
    monkeypatch.setenv("MANPATH", f"{tmp_path / 'missing'}:{tmp_path / 'a'}")
    assert default_man_dirs() == [tmp_path / "a"]


# --- the text corpus ---------------------------------------------------------------------------------------------


def test_aliases_short_and_duplicate_pages_are_dropped_and_counted(man_tree: Path) -> None:
    corpus = build(man_tree)
    names = {name for name, _ in split_of_pages(corpus)}
    assert {"ls", "copy", "printf", "Foo::Bar", "passwd"} <= names
    assert not names & {"dir", "vdir", "tiny", "cp"}  # symlink, redirect, too short, duplicate of copy
    dropped = report(corpus)["dropped"]
    assert dropped["symlink"] == 1
    assert dropped["redirect"] == 1
    assert dropped["too_short"] == 1
    assert dropped["duplicate"] == 1
    assert dropped["family_cap"] == len(FOO_FAMILY) - FAMILY_CAP
    assert dropped["unreadable"] == 0
    for dataset in corpus.values():
        for text in dataset["text"]:
            assert text.startswith("NAME\n") and ".TH" not in text and "\\f" not in text


def test_family_cap_keeps_a_hashed_choice_per_section(man_tree: Path) -> None:
    pages = split_of_pages(build(man_tree))
    kept = sorted(name for name, section in pages if section == "1" and name.startswith("foo_"))
    assert len(kept) == FAMILY_CAP
    assert kept != FOO_FAMILY[:FAMILY_CAP]  # not the alphabetical first ones
    assert ("foo_x", "3") in pages  # the cap counts per section
    assert ("bar-one", "1") in pages and ("bar-two", "1") in pages  # a family under the cap is untouched
    assert kept == sorted(
        name for name, section in split_of_pages(build(man_tree)) if name.startswith("foo_") and section == "1"
    )
    assert len(
        [
            name
            for name, section in split_of_pages(build(man_tree, family_cap=None))
            if section == "1" and name.startswith("foo_")
        ]
    ) == len(FOO_FAMILY)


def test_split_is_deterministic_and_each_page_depends_only_on_its_name(man_tree: Path) -> None:
    first = build(man_tree)
    again = build(man_tree)
    for split in ("train", "validation", "test"):
        assert first[split].to_dict() == again[split].to_dict()
    assert all(first[split].num_rows for split in ("train", "validation", "test"))
    write_page(man_tree, "1", "zzz-unrelated.1.gz", page_source("zzz-unrelated", "1", "an unrelated command"))
    write_page(man_tree, "7", "aaa.7.gz", page_source("aaa", "7", "an overview"))
    grown = split_of_pages(build(man_tree))
    assert ("zzz-unrelated", "1") in grown
    for page, split in split_of_pages(first).items():
        assert grown[page] == split


@pytest.mark.parametrize("salt", [f"salt-{index}" for index in range(4)])
def test_split_is_by_page_name(man_tree: Path, salt: str) -> None:
    pages = split_of_pages(build(man_tree, split_salt=salt, family_cap=None))
    assert pages[("printf", "1")] == pages[("printf", "3")]
    splits_of_name: dict[str, set[str]] = {}
    for (name, _), split in pages.items():
        splits_of_name.setdefault(name, set()).add(split)
    assert all(len(splits) == 1 for splits in splits_of_name.values())


def test_splits_are_shuffled_without_changing_which_pages_they_hold(man_tree: Path) -> None:
    def rows(corpus: datasets.DatasetDict) -> dict[str, list[tuple[str, str]]]:
        return {split: list(zip(part["section"], part["name"])) for split, part in corpus.items()}

    shuffled, ordered = rows(build(man_tree, family_cap=None)), rows(build(man_tree, family_cap=None, shuffle=False))
    for split in ("train", "validation", "test"):
        assert ordered[split] == sorted(ordered[split])  # shuffle=False: (section, name) order, as before
        assert sorted(shuffled[split]) == ordered[split]  # the same pages ...
    assert shuffled["train"] != ordered["train"]  # ... in another order
    sections = [section for section, _ in shuffled["train"]]
    assert sections != sorted(sections)  # section 1 does not come first
    # the order is a property of each page: pages added to the tree do not move the others relative to each other
    write_page(man_tree, "2", "open.2.gz", page_source("open", "2", "opening a file"))
    write_page(man_tree, "7", "aaa.7.gz", page_source("aaa", "7", "an overview"))
    grown = rows(build(man_tree, family_cap=None))
    for split, pages in shuffled.items():
        assert [page for page in grown[split] if page in pages] == pages


def test_cache_dir_reuses_the_build_until_a_page_changes(
    man_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    built = build(man_tree, cache_dir=cache)
    assert len(list(cache.glob("manpages-*.json"))) == 1

    def no_conversion(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached build should have been used")

    monkeypatch.setattr(manpages, "_convert_all", no_conversion)
    assert build(man_tree, cache_dir=cache)["train"].to_dict() == built["train"].to_dict()
    write_page(man_tree, "1", "cat.1.gz", page_source("cat", "1", "a changed page about concatenation"))
    with pytest.raises(AssertionError, match="cached build"):
        build(man_tree, cache_dir=cache)


def test_missing_directories_raise_with_the_directories_in_the_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-man-dir"
    with pytest.raises(ManPagesNotFoundError, match="no-such-man-dir") as info:
        build(missing)
    assert "gettext:de" in str(info.value) and "man_dirs=" in str(info.value)
    empty = tmp_path / "empty"
    (empty / "man1").mkdir(parents=True)
    with pytest.raises(ManPagesNotFoundError, match="empty"):
        build(empty)


def test_everything_filtered_away_raises_value_error(man_tree: Path) -> None:
    with pytest.raises(ValueError, match="survived"):
        build(man_tree, min_words=100_000)


# --- the sections corpus and the summary -------------------------------------------------------------------------


def test_sections_corpus_labels_are_the_directory_sections(man_tree: Path) -> None:
    text_corpus = build(man_tree)
    corpus = build_manpage_sections_corpus(
        man_dirs=[man_tree],
        family_cap=FAMILY_CAP,
        validation_fraction=0.3,
        test_fraction=0.3,
        num_proc=1,
        min_pages_per_section=2,
        max_words=12,
    )
    label = corpus["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel)
    assert label.names == ["1", "3", "8"]  # man5 has one page, below min_pages_per_section
    pages = split_of_pages(text_corpus)
    texts = {
        name_section: text
        for dataset in text_corpus.values()
        for name_section, text in zip(zip(dataset["name"], dataset["section"]), dataset["text"])
    }
    seen = 0
    for split, dataset in corpus.items():
        for name, text, label_id in zip(dataset["name"], dataset["text"], dataset["label"]):
            section = label.names[label_id]
            assert pages[(name, section)] == split  # same split as the text corpus
            assert text == " ".join(texts[(name, section)].split()[:12])
            seen += 1
    assert seen == sum(1 for _, section in pages if section != "5")
    for split, dataset in corpus.items():  # the same order as the text corpus
        part = text_corpus[split]
        assert dataset["name"] == [name for name, section in zip(part["name"], part["section"]) if section != "5"]
    foo_bar = [
        label.names[label_id]
        for dataset in corpus.values()
        for name, label_id in zip(dataset["name"], dataset["label"])
        if name == "Foo::Bar"
    ]
    assert foo_bar == ["3"]
    description = json.loads(corpus["test"].info.description)
    assert description["dropped_sections"] == {"5": 1}


def test_sections_corpus_without_enough_pages_raises(man_tree: Path) -> None:
    with pytest.raises(ValueError, match="min_pages_per_section"):
        build_manpage_sections_corpus(man_dirs=[man_tree], num_proc=1, min_pages_per_section=1000)


def test_summary_majority_baseline_comes_from_train() -> None:
    features = datasets.Features(
        {
            "name": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["1", "3", "8"]),
        }
    )

    def split(labels: list[int]) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {
                "name": [f"p{index}" for index in range(len(labels))],
                "text": ["two words"] * len(labels),
                "label": labels,
            },
            features=features,
        )

    # train's majority is "1"; validation's own majority would be "3" (accuracy 0.75 instead of 0.25)
    corpus = datasets.DatasetDict({"train": split([0, 0, 1]), "validation": split([0, 1, 1, 1]), "test": split([2])})
    summary = manpages_summary(corpus)
    assert summary["majority_class"] == "1"
    assert summary["majority_baseline"] == {"validation": 0.25, "test": 0.0}
    assert summary["class_balance"]["validation"] == {"1": 1, "3": 3}
    assert summary["splits"]["validation"] == {"pages": 4, "words": 8, "sections": {"1": 1, "3": 3}}
    assert summary["sections"] == {"1": 3, "3": 4, "8": 1}


def test_summary_of_the_text_corpus_counts_pages_words_and_sections(man_tree: Path) -> None:
    corpus = build(man_tree)
    summary = manpages_summary(corpus)
    for split, dataset in corpus.items():
        assert summary["splits"][split]["pages"] == dataset.num_rows
        assert summary["splits"][split]["words"] == sum(len(text.split()) for text in dataset["text"])
    assert summary["sections"]["3"] == 4 and summary["sections"]["5"] == 1
    assert summary["build_report"]["dropped"]["redirect"] == 1
    assert "majority_baseline" not in summary


@pytest.mark.slow
def test_parallel_build_equals_serial_build(tmp_path: Path) -> None:
    root = tmp_path / "man"
    for index in range(140):
        write_page(root, "1", f"cmd{index}.1.gz", page_source(f"cmd{index}", "1", f"command number {index}"))
    serial = build(root, num_proc=1)
    parallel = build(root, num_proc=2)
    for split in ("train", "validation", "test"):
        assert serial[split].to_dict() == parallel[split].to_dict()


@pytest.mark.slow
def test_the_machines_man_pages(tmp_path: Path) -> None:
    if not SYSTEM_MAN1.is_dir():
        pytest.skip(f"{SYSTEM_MAN1} does not exist: no manual pages are installed on this machine")
    # the cache makes the second build (the sections corpus, same pages and options) a file read
    corpus = build_manpages_corpus(man_dirs=[SYSTEM_MAN1.parent], cache_dir=tmp_path)
    pages = split_of_pages(corpus)
    if len(list(SYSTEM_MAN1.glob("gcloud_*"))) > 200:
        assert "gcloud(1)" in report(corpus)["capped_families"]
        assert 100 < len([name for name, section in pages if section == "1" and name.startswith("gcloud_")]) <= 200
    # 3,555 pages on the reference machine: of 22,142 files, 16,431 gcloud pages fall to the cap, 2,122 are symlinks
    assert len(pages) >= 3000
    sections = build_manpage_sections_corpus(man_dirs=[SYSTEM_MAN1.parent], cache_dir=tmp_path)
    names = sections["train"].features["label"].names
    assert {"1", "2", "3", "5", "7", "8"} <= set(names)
    # the first rows of a split are a sample of it (what --max_eval_samples 60 evaluates on), not section 1 first
    assert len({names[label] for label in list(sections["validation"]["label"])[:60]}) >= 4
    train_labels = list(sections["train"]["label"])
    section_1 = names.index("1")
    share = train_labels.count(section_1) / len(train_labels)
    assert abs(train_labels[:300].count(section_1) / 300 - share) < 0.1
    summary = manpages_summary(sections)
    assert 0 < summary["majority_baseline"]["test"] < 1
