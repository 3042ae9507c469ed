"""`Seq2SeqTrainer` with token-based batches and checkpoints that count only once they are complete.

The Trainer writes `checkpoint-N/` file by file; a crash half-way leaves a folder that looks like a checkpoint.
`TranslationTrainer` writes a `COMPLETE` marker into the folder after everything else is on disk, and
`latest_complete_checkpoint` resumes only from marked folders, setting unmarked ones aside (never deleting them).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from .batching import TokenBatchSampler
from .time_budget import BudgetedSchedule

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
LENGTH_COLUMN = "length"


class TranslationTrainer(Seq2SeqTrainer):
    """A `Seq2SeqTrainer` that batches training examples by `max_tokens` (padded source or target tokens per
    device batch) when given, and marks finished checkpoints. The train dataset needs a `length` column."""

    def __init__(
        self, *args: Any, max_tokens: int | None = None, lr_schedule: BudgetedSchedule | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_tokens = max_tokens
        self.lr_schedule = lr_schedule

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """transformers' schedule, or with `lr_schedule` (a time budget) that schedule, whose step count is fixed
        during the run."""
        if self.lr_schedule is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = self.lr_schedule.scheduler(optimizer if optimizer is not None else self.optimizer)
        return self.lr_scheduler

    def get_train_dataloader(self) -> DataLoader:
        if self.max_tokens is None:
            return super().get_train_dataloader()
        if LENGTH_COLUMN not in self.train_dataset.column_names:
            raise ValueError(f"token batching needs a '{LENGTH_COLUMN}' column in the train dataset")
        # a plain list: indexing the datasets Column one row at a time costs minutes for a few 100,000 rows
        lengths = self.train_dataset.select_columns([LENGTH_COLUMN]).to_dict()[LENGTH_COLUMN]
        sampler = TokenBatchSampler(lengths, max_tokens=self.max_tokens, shuffle=True, seed=self.args.seed)
        dataset = self._remove_unused_columns(self.train_dataset, description="Training")
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        # transformers updates the saved state of each stateful callback in place and fails on one the resumed
        # checkpoint's trainer_state.json lacks (written by a version with other callbacks): add those first
        for callback in [*self.callback_handler.callbacks, self.control]:
            if isinstance(callback, ExportableState):
                self.state.stateful_callbacks.setdefault(type(callback).__name__, callback.state())
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            marker = {"global_step": self.state.global_step, "files": sorted(p.name for p in folder.iterdir())}
            temporary = folder / f".{COMPLETE_MARKER}.tmp"
            temporary.write_text(json.dumps(marker))
            os.replace(temporary, folder / COMPLETE_MARKER)  # the marker itself appears atomically


def _is_complete(folder: Path) -> bool:
    """Whether `folder` has a `COMPLETE` marker and every file the marker lists still exists."""
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        return False
    listed = json.loads(marker.read_text()).get("files", [])
    missing = [name for name in listed if not (folder / name).exists()]
    if missing:
        logger.warning("checkpoint %s is missing %s; skipping it", folder, ", ".join(missing))
    return not missing


def latest_complete_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """The newest `checkpoint-N` folder with a `COMPLETE` marker whose listed files all exist, or None.

    Unmarked (interrupted) folders newer than it are renamed `checkpoint-N.incomplete-<time>`, so that afterwards
    transformers' own `get_last_checkpoint` (which `Trainer.train(resume_from_checkpoint=True)` uses) finds the
    same folder; nothing is deleted.
    """
    root = Path(checkpoint_dir)
    if not root.is_dir():
        return None
    # Set the newest folder aside until the newest one is complete: the renamed name no longer matches
    # `checkpoint-<digits>`, so get_last_checkpoint moves on to the next older folder.
    while (last := get_last_checkpoint(str(root))) is not None:
        folder = Path(last)
        if _is_complete(folder):
            return folder
        target = folder.with_name(f"{folder.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}")
        logger.warning("checkpoint %s was not completely written; moving it to %s", folder, target)
        folder.rename(target)
    return None
