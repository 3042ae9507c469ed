"""Training to a time budget: as many optimizer steps as fit in N minutes on the machine at hand.

A run of `max_steps` takes 21 minutes on one 2-core machine and 33 on another; a budget in minutes is what a user
has. `hf-encdec train --time-budget 28` trains with `max_steps` as an upper bound only. At the end of the learning
rate warm-up (whose shape does not depend on the step count) `TimeBudgetCallback` measures the steps per second of the
second half of the warm-up, times one validation, and fixes the step count so that what is left of the budget holds
the remaining steps and validations:

    steps = warm-up + speed x (budget - time so far - validations to come x one validation's time)

From then on the run is an ordinary run of that many steps: the learning-rate schedule (`BudgetedSchedule`, the one
transformers builds for the same type and step count) decays to its end at that step, and the step count is written
to the run folder (`time_budget.json`), so that a resumed run trains to the same step and `--max-steps STEPS`
repeats the run's schedule exactly on any machine.

>>> import torch
>>> from transformers import get_scheduler
>>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
>>> schedule = BudgetedSchedule("cosine", warmup_steps=10, total_steps=1000)
>>> schedule.set_total(100)
>>> plain = get_scheduler("cosine", optimizer, num_warmup_steps=10, num_training_steps=100).lr_lambdas[0]
>>> [round(schedule(step), 6) == round(plain(step), 6) for step in (0, 5, 10, 55, 100)]
[True, True, True, True, True]
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, get_scheduler

logger = logging.getLogger(__name__)

RECORD_FILE = "time_budget.json"
#: learning-rate schedules whose shape is fixed by the step count, which a budget sets after the warm-up
BUDGETED_SCHEDULES = ("linear", "cosine", "constant_with_warmup")
#: the fewest warm-up steps whose second half gives a usable speed
MIN_WARMUP_STEPS = 20


def calibration_step(warmup_steps: int) -> int:
    """The step at which a budget fixes the step count: the end of the warm-up (at least `MIN_WARMUP_STEPS`)."""
    return max(warmup_steps, MIN_WARMUP_STEPS)


class BudgetedSchedule:
    """The learning-rate factor of transformers' schedule `name` for a step count that may be set later
    (`set_total`); before that, the schedule of `total_steps` (the run's upper bound). The factor is taken from the
    scheduler `transformers.get_scheduler` builds, so a budgeted run and a plain run of the same step count follow
    the same curve."""

    def __init__(self, name: str, *, warmup_steps: int, total_steps: int) -> None:
        if name not in BUDGETED_SCHEDULES:
            raise ValueError(
                f"a time budget works with the learning-rate schedules {', '.join(BUDGETED_SCHEDULES)}, "
                f"not {name!r}: give --max-steps instead, or one of those schedules"
            )
        self.name = name
        self.warmup_steps = warmup_steps
        self.set_total(total_steps)

    def set_total(self, total_steps: int) -> None:
        self.total_steps = total_steps
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = get_scheduler(
            self.name, probe, num_warmup_steps=self.warmup_steps, num_training_steps=total_steps
        )
        self._factor = scheduler.lr_lambdas[0]

    def __call__(self, step: int) -> float:
        return self._factor(step)

    def scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """A `LambdaLR` of `optimizer` following this schedule, also after `set_total`."""

        def factor(step: int) -> float:  # a plain function: LambdaLR's state_dict leaves it out
            return self(step)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def budgeted_steps(
    *,
    budget_seconds: float,
    elapsed_seconds: float,
    step: int,
    steps_per_second: float,
    validation_seconds: float,
    eval_steps: int,
    max_steps: int,
) -> int:
    """The step count that fits the budget: from `step`, steps at `steps_per_second` and a validation of
    `validation_seconds` every `eval_steps` steps and at the end, in what is left of `budget_seconds`; at most
    `max_steps`, at least `step + 1`.

    >>> budgeted_steps(budget_seconds=1000, elapsed_seconds=100, step=300, steps_per_second=2.0,
    ...                validation_seconds=10, eval_steps=500, max_steps=10_000)
    2000
    """
    left = budget_seconds - elapsed_seconds

    def cost(total: int) -> float:
        validations = total // eval_steps - step // eval_steps + (total % eval_steps != 0)
        return (total - step) / steps_per_second + validations * validation_seconds

    low, high = step + 1, max(step + 1, max_steps)
    if cost(low) > left:
        return low
    while low < high:  # the most steps whose cost fits; the cost grows with the step count
        middle = (low + high + 1) // 2
        low, high = (middle, high) if cost(middle) <= left else (low, middle - 1)
    return low


def _random_state() -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def _set_random_state(state: tuple[torch.Tensor, list[torch.Tensor]]) -> None:
    torch.set_rng_state(state[0])
    if state[1]:
        torch.cuda.set_rng_state_all(state[1])


def read_record(output_dir: str | Path) -> dict[str, Any] | None:
    """The step count a budgeted run fixed (`time_budget.json` in its folder), or None before it was fixed."""
    path = Path(output_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        int(record["max_steps"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a time-budget record ({error}); delete it to measure the budget again") from error
    return record


class TimeBudgetCallback(TrainerCallback):
    """Fixes a run's step count at the end of its warm-up so that the run ends within `budget_minutes` of
    `started` (a `time.perf_counter()` value: the run's start, data preparation included), and records it.

    With several processes, the main process's count is broadcast, so that every process stops at the same step.
    """

    def __init__(self, budget_minutes: float, *, started: float, schedule: BudgetedSchedule,
                 record_dir: str | Path | None) -> None:
        self.budget_seconds = budget_minutes * 60
        self.budget_minutes = budget_minutes
        self.started = started
        self.schedule = schedule
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.calibration_step = calibration_step(schedule.warmup_steps)
        self.halfway_step = self.calibration_step // 2
        self._times: dict[int, float] = {}
        self._fixed = False
        self._random_state: tuple[torch.Tensor, list[torch.Tensor]] | None = None
        #: the Trainer's `ProgressCallback`s, whose bars are given the fixed step count (set by the recipe)
        self.progress_callbacks: list[Any] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._fixed and state.global_step >= self.calibration_step:
            raise ValueError(
                f"this budgeted run resumes at step {state.global_step}, after its step count was fixed at step "
                f"{self.calibration_step}, but its {RECORD_FILE} is missing: resume with --max-steps and the step "
                "count its log gave instead of --time-budget"
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed or state.global_step not in (self.halfway_step, self.calibration_step):
            return
        self._times[state.global_step] = time.perf_counter()
        if state.global_step == self.calibration_step and not control.should_evaluate:
            # a validation of its own, timed: what every later one will cost. Creating its data loader draws from
            # the random state, so the draw is undone afterwards, for the dropout masks of a plain run of as many
            # steps
            control.should_evaluate = True
            self._random_state = _random_state()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed or self.calibration_step not in self._times or state.global_step != self.calibration_step:
            return
        now = time.perf_counter()
        if self._random_state is not None:
            _set_random_state(self._random_state)
        speed = (self.calibration_step - self.halfway_step) / (
            self._times[self.calibration_step] - self._times[self.halfway_step]
        )
        validation = now - self._times[self.calibration_step]
        steps = budgeted_steps(
            budget_seconds=self.budget_seconds, elapsed_seconds=now - self.started, step=state.global_step,
            steps_per_second=speed, validation_seconds=validation, eval_steps=args.eval_steps,
            max_steps=state.max_steps,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            shared = torch.tensor([steps], dtype=torch.long, device=args.device)
            torch.distributed.broadcast(shared, src=0)
            steps = int(shared.item())
        self._fix(state, steps, speed=speed, validation=validation, elapsed=now - self.started,
                  is_main=state.is_world_process_zero)

    def _fix(self, state: Any, steps: int, *, speed: float, validation: float, elapsed: float, is_main: bool) -> None:
        capped = steps >= state.max_steps
        state.max_steps = steps
        self.schedule.set_total(steps)
        self._fixed = True
        for callback in self.progress_callbacks:  # the progress bar was started with the upper bound
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.total = steps
                bar.refresh()
        if not is_main:
            return
        logger.info(
            "time budget %.1f min: %.2f steps/s over steps %d-%d, one validation %.1f s, %.1f min used so far: "
            "training to step %d%s", self.budget_minutes, speed, self.halfway_step + 1, self.calibration_step,
            validation, elapsed / 60, steps, " (the --max-steps bound)" if capped else "",
        )
        if self.record_dir is not None:
            record = {
                "budget_minutes": self.budget_minutes, "max_steps": steps, "capped_by_max_steps": capped,
                "steps_per_second": round(speed, 4), "validation_seconds": round(validation, 2),
                "minutes_used_at_warmup_end": round(elapsed / 60, 2), "fixed_at_step": self.calibration_step,
            }
            path = self.record_dir / RECORD_FILE
            temporary = path.with_name(f".{RECORD_FILE}.tmp")
            temporary.write_text(json.dumps(record, indent=2))
            os.replace(temporary, path)


__all__ = [
    "BUDGETED_SCHEDULES", "BudgetedSchedule", "TimeBudgetCallback", "budgeted_steps", "calibration_step", "read_record",
]
