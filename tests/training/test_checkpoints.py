"""Resuming picks the newest checkpoint that was completely written and sets interrupted ones aside."""

from __future__ import annotations

import json
from pathlib import Path

from transformers.trainer_utils import get_last_checkpoint

from hf_encdec.training import latest_complete_checkpoint
from hf_encdec.training.trainer import COMPLETE_MARKER


def _checkpoint(root: Path, step: int, *, complete: bool, files: tuple[str, ...] = ("model.safetensors",)) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("x")
    if complete:
        (folder / COMPLETE_MARKER).write_text(json.dumps({"global_step": step, "files": list(files)}))
    return folder


def test_newest_complete_checkpoint_wins_and_partial_ones_are_kept_aside(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 4, complete=True)
    _checkpoint(tmp_path, 12, complete=True)
    partial = _checkpoint(tmp_path, 16, complete=False)
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-12"
    assert not partial.exists()
    kept = list(tmp_path.glob("checkpoint-16.incomplete-*"))
    assert len(kept) == 1 and (kept[0] / "model.safetensors").exists()  # nothing deleted


def test_a_marked_checkpoint_with_missing_files_is_not_used(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 4, complete=True)
    broken = _checkpoint(tmp_path, 8, complete=True, files=("model.safetensors", "optimizer.pt"))
    (broken / "optimizer.pt").unlink()
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"


def test_no_checkpoint(tmp_path: Path) -> None:
    assert latest_complete_checkpoint(tmp_path / "missing") is None
    _checkpoint(tmp_path, 2, complete=False)
    assert latest_complete_checkpoint(tmp_path) is None


def test_after_the_lookup_transformers_resumes_from_the_same_folder(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 4, complete=True)
    _checkpoint(tmp_path, 8, complete=False)
    broken = _checkpoint(tmp_path, 12, complete=True, files=("model.safetensors", "optimizer.pt"))
    (broken / "optimizer.pt").unlink()
    found = latest_complete_checkpoint(tmp_path)
    assert found == tmp_path / "checkpoint-4"
    assert get_last_checkpoint(str(tmp_path)) == str(found)  # what Trainer.train(resume_from_checkpoint=True) picks
    assert len(list(tmp_path.glob("checkpoint-*.incomplete-*"))) == 2


def test_set_aside_folders_are_not_checkpoints_on_the_next_lookup(tmp_path: Path) -> None:
    _checkpoint(tmp_path, 4, complete=True)
    _checkpoint(tmp_path, 8, complete=False)
    latest_complete_checkpoint(tmp_path)
    (aside,) = tmp_path.glob("checkpoint-8.incomplete-*")
    # The set-aside name ends in digits (the time), which must not read as a step number on the next run.
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"
    assert list(tmp_path.glob("checkpoint-8.incomplete-*")) == [aside]
