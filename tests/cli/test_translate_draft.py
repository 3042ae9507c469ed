"""`hf-encdec translate --draft source` (speculative decoding from the command line): the same lines as plain greedy
translation, and a clear refusal where drafting would change the search (beams)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LINES = ["Open the file %s", "Café closed", "--all  show all"]


def _translate(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hf_encdec", "translate", str(folder), "--max-new-tokens", "12", "--no-protect", *extra],
        input="\n".join(LINES) + "\n", capture_output=True, text=True, timeout=300,
    )


def test_translate_with_source_lookup_prints_the_greedy_lines(byte_level_copier: Path) -> None:
    plain = _translate(byte_level_copier, "--beams", "1")
    drafted = _translate(byte_level_copier, "--beams", "1", "--draft", "source")
    assert plain.returncode == 0 and drafted.returncode == 0, drafted.stderr[-2000:]
    assert len(plain.stdout.splitlines()) == len(LINES)
    assert drafted.stdout == plain.stdout


def test_translate_with_a_draft_and_beams_is_refused(byte_level_copier: Path) -> None:
    completed = _translate(byte_level_copier, "--beams", "3", "--draft", "source")
    assert completed.returncode != 0
    assert "num_beams=3" in completed.stderr
