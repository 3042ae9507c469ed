"""Every Python snippet in the README and in docs/ runs as written; every relative link in them leads to a file of the
repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPETS = [
    (f"{document.relative_to(ROOT)} snippet {index}", snippet)
    for document in DOCUMENTS
    for index, snippet in enumerate(re.findall(r"```python\n(.*?)```", document.read_text(encoding="utf-8"), flags=re.S))
]


def test_the_readme_has_snippets() -> None:
    assert sum(name.startswith("README.md") for name, _ in SNIPPETS) >= 1
    assert len(SNIPPETS) >= 8


@pytest.mark.parametrize("name,snippet", SNIPPETS, ids=[name for name, _ in SNIPPETS])
def test_snippet_runs(name: str, snippet: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, name, "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_relative_links_lead_to_files_of_the_repository(document: Path) -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", document.read_text(encoding="utf-8"))
    missing = [t for t in targets if not t.startswith(("http://", "https://")) and not (document.parent / t).exists()]
    assert not missing, f"{document.relative_to(ROOT)} links to files that do not exist: {missing}"
    outside = [t for t in targets if not (document.parent / t).resolve().is_relative_to(ROOT)]
    assert not outside, f"{document.relative_to(ROOT)} links outside the repository: {outside}"


def test_the_family_table_is_the_registration_table() -> None:
    from hf_encdec.registration import readme_table

    assert readme_table() in README.read_text(encoding="utf-8"), (
        "README.md's family table differs from hf_encdec.registration.FAMILIES; paste registration.readme_table()"
    )
