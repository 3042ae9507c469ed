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

A schedule that decays from the warm-up on has to know its end from the start, so it is fixed on 150 steps' speed,
and a machine that changes speed afterwards (2-core cloud machines do, by a third) makes the run end early or late.
`--lr-scheduler-type warmup_stable_decay` (warm-up, a constant rate, then a decay over the last fifth: Haegele et
al. 2024 find it matches cosine) needs its end only when the decay begins: the budget measures the speed of every
step until then and fixes the count with four fifths of the run measured. The record then also holds the decay's
length, and `--max-steps STEPS --decay-steps DECAY` repeats the run.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import EarlyStoppingCallback, TrainerCallback, get_scheduler

logger = logging.getLogger(__name__)

RECORD_FILE = "time_budget.json"
WSD = "warmup_stable_decay"
#: learning-rate schedules whose shape is fixed by the step count, which a budget sets after the warm-up (or, for
#: warmup_stable_decay, when its decay has to begin)
BUDGETED_SCHEDULES = ("linear", "cosine", "constant_with_warmup", WSD)
#: warmup_stable_decay: the decay's share of a run when no --decay-steps is given (Haegele et al. 2024, "Scaling Laws
#: and Compute-Optimal Training Beyond Fixed Training Durations": a cool-down of about a fifth matches cosine), and
#: the decay's shape (1 - sqrt(progress), their best)
DECAY_SHARE = 0.2
DECAY_TYPE = "1-sqrt"
#: how often (in steps) a budgeted warmup_stable_decay run asks whether its decay has to begin
CHECK_EVERY = 10
#: the fewest warm-up steps whose second half gives a usable speed
MIN_WARMUP_STEPS = 20


def schedule_kwargs(name: str, *, warmup_steps: int, total_steps: int, decay_steps: int | None = None) -> dict[str, Any]:
    """transformers' `lr_scheduler_kwargs` for the schedule `name`: for warmup_stable_decay the length of its decay
    (`decay_steps`, by default `DECAY_SHARE` of the run) and its shape; nothing for the others.

    >>> schedule_kwargs("warmup_stable_decay", warmup_steps=300, total_steps=4000)
    {'num_decay_steps': 800, 'decay_type': '1-sqrt'}
    """
    if name != WSD:
        if decay_steps is not None:
            raise ValueError(f"decay_steps={decay_steps} sets the decay of the {WSD} schedule, not of {name!r}: "
                             f"drop it, or add --lr-scheduler-type {WSD}")
        return {}
    decay = max(1, round(DECAY_SHARE * total_steps)) if decay_steps is None else decay_steps
    if decay < 1 or warmup_steps + decay > total_steps:
        raise ValueError(
            f"decay_steps={decay} does not fit a run of {total_steps} steps whose warm-up takes {warmup_steps}: "
            f"give between 1 and {total_steps - warmup_steps}"
        )
    return {"num_decay_steps": decay, "decay_type": DECAY_TYPE}


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

    def set_total(self, total_steps: int, decay_steps: int | None = None) -> None:
        """Ends the schedule at `total_steps`; warmup_stable_decay decays over the last `decay_steps` of them (by
        default `DECAY_SHARE` of them)."""
        self.total_steps = total_steps
        kwargs = schedule_kwargs(self.name, warmup_steps=self.warmup_steps, total_steps=total_steps,
                                 decay_steps=decay_steps)
        self.decay_steps = kwargs.get("num_decay_steps")
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = get_scheduler(self.name, probe, num_warmup_steps=self.warmup_steps,
                                  num_training_steps=total_steps, scheduler_specific_kwargs=kwargs)
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
    """A budgeted run's record (`time_budget.json` in its folder), or None before it has one: `max_steps` once the
    step count is fixed (None before), `progress` the minutes used at each checkpoint saved before that."""
    path = Path(output_dir) / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record.get("max_steps") is not None:
            int(record["max_steps"])
        {int(step): float(minutes) for step, minutes in record.get("progress", {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} is not a time-budget record ({error}); delete it to measure the budget again") from error
    return record


def _write_record(record_dir: Path, record: dict[str, Any]) -> None:
    path = record_dir / RECORD_FILE
    temporary = path.with_name(f".{RECORD_FILE}.tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)


def decay_due(step: int, total_steps: int) -> bool:
    """Whether a warmup_stable_decay run at `step` that can reach `total_steps` has to begin its decay now: what is
    left is no more than the decay's share (`DECAY_SHARE`) of the run.

    >>> decay_due(3000, 4000), decay_due(3200, 4000), decay_due(300, 301)
    (False, True, True)
    """
    return total_steps - step <= max(1, round(DECAY_SHARE * total_steps))


class TimeBudgetCallback(TrainerCallback):
    """Fixes a run's step count so that the run ends within `budget_minutes` of `started` (a `time.perf_counter()`
    value: the run's start, data preparation included), and records it.

    Schedules that decay from the warm-up on (cosine, linear) get their count at the end of the warm-up, from the
    speed of its second half. warmup_stable_decay keeps its learning rate until its decay has to begin: every
    `CHECK_EVERY` steps it measures the speed of all the steps since the warm-up (validations and checkpoints left
    out, then added at their own measured cost) and begins the decay when what is left of the budget holds no more
    than `DECAY_SHARE` of the run; a change of the machine's speed before then moves the end, not the schedule.
    Until the count is fixed, each checkpoint's minutes are recorded, so that a resumed run goes on with what is left.

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
        # warmup_stable_decay's measurement after the warm-up: where it started (step, time), the seconds spent in
        # validations and checkpoints since, and one validation's cost
        self._measured_from: tuple[int, float] | None = None
        self._pause_started: float | None = None
        self._pauses: list[float] = []
        self._validation: float | None = None
        self._progress: dict[str, float] = {}
        #: the Trainer's `ProgressCallback`s, whose bars are given the fixed step count (set by the recipe)
        self.progress_callbacks: list[Any] = []

    @property
    def _late(self) -> bool:
        return self.schedule.name == WSD

    def decay_start(self) -> int | None:
        """The step at which warmup_stable_decay's decay begins, once the count is fixed; None before."""
        return self.schedule.total_steps - self.schedule.decay_steps if self._fixed and self._late else None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed or state.global_step == 0:
            return
        record = read_record(self.record_dir) if self.record_dir is not None else None
        self._progress = dict((record or {}).get("progress", {}))
        used = self._progress.get(str(state.global_step))
        if used is not None:
            self.started -= used * 60  # the minutes spent before the resumed checkpoint
            self._validation = (record or {}).get("validation_seconds")
        if state.global_step < self.calibration_step or self.record_dir is None:
            return
        if used is None:
            how = ("--max-steps and --decay-steps (the steps you still want, and the part of them to decay over) "
                   "instead of --time-budget" if self._late else
                   "--max-steps and the step count its log gave instead of --time-budget")
            raise ValueError(
                f"this budgeted run resumes at step {state.global_step}, after its warm-up, but its {RECORD_FILE} has "
                f"neither the step count nor the minutes used by then: resume with {how}"
            )

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._pause_started is not None:  # the validation or checkpoint after the last step is over
            self._pauses.append(time.perf_counter() - self._pause_started)
            self._pause_started = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed:
            return
        now = time.perf_counter()
        if state.global_step in (self.halfway_step, self.calibration_step) and state.global_step not in self._times:
            self._times[state.global_step] = now
            if state.global_step == self.calibration_step and not control.should_evaluate:
                # a validation of its own, timed: what every later one will cost. Creating its data loader draws
                # from the random state, so the draw is undone afterwards, for the dropout masks of a plain run of
                # as many steps
                control.should_evaluate = True
                self._random_state = _random_state()
            return
        if not self._late or state.global_step < self.calibration_step:
            return
        if state.global_step >= self.schedule.total_steps - self.schedule.decay_steps:
            # the upper bound's own decay begins: the budget holds all of max_steps (the same on every process)
            self._fix(state, state.max_steps, speed=self._speed(state, now), elapsed=now - self.started,
                      is_main=state.is_world_process_zero)
            return
        if self._measured_from is None:  # resumed after the warm-up: measure from here
            self._measured_from = (state.global_step, now)
        elif state.global_step % CHECK_EVERY == 0:
            self._check_decay(args, state, now)
        if not self._fixed and (control.should_evaluate or control.should_save):
            self._pause_started = now

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed or self.calibration_step not in self._times or state.global_step != self.calibration_step:
            return
        if self._validation is not None and self._measured_from is not None:
            return  # a second validation at the same step (none expected): measured already
        now = time.perf_counter()
        if self._random_state is not None:
            _set_random_state(self._random_state)
        speed = (self.calibration_step - self.halfway_step) / (
            self._times[self.calibration_step] - self._times[self.halfway_step]
        )
        self._validation = now - self._times[self.calibration_step]
        steps = self._budgeted(args, state, now, speed)
        self._measured_from = (state.global_step, now)
        if not self._late or decay_due(state.global_step, steps):
            self._fix(state, steps, speed=speed, elapsed=now - self.started, is_main=state.is_world_process_zero)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._fixed or self.record_dir is None:
            return
        self._progress[str(state.global_step)] = round((time.perf_counter() - self.started) / 60, 3)
        _write_record(self.record_dir, {
            "budget_minutes": self.budget_minutes, "max_steps": None, "validation_seconds": self._validation,
            "progress": self._progress,
        })

    def _budgeted(self, args: Any, state: Any, now: float, speed: float) -> int:
        """The step count that fits what is left, from the main process (broadcast to the others)."""
        validation = sum(self._pauses) / len(self._pauses) if self._pauses else self._validation
        steps = budgeted_steps(
            budget_seconds=self.budget_seconds, elapsed_seconds=now - self.started, step=state.global_step,
            steps_per_second=speed, validation_seconds=validation or 0.0, eval_steps=args.eval_steps,
            max_steps=state.max_steps,
        )
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            shared = torch.tensor([steps], dtype=torch.long, device=args.device)
            torch.distributed.broadcast(shared, src=0)
            steps = int(shared.item())
        return steps

    def _speed(self, state: Any, now: float) -> float:
        """Steps per second since the measurement began, validations and checkpoints left out."""
        if self._measured_from is None:
            return 0.0
        step, since = self._measured_from
        seconds = now - since - sum(self._pauses)
        return (state.global_step - step) / seconds if seconds > 0 and state.global_step > step else 0.0

    def _check_decay(self, args: Any, state: Any, now: float) -> None:
        speed = self._speed(state, now)
        if speed == 0.0:
            return
        steps = self._budgeted(args, state, now, speed)
        if decay_due(state.global_step, steps):
            self._fix(state, steps, speed=speed, elapsed=now - self.started, is_main=state.is_world_process_zero)

    def _fix(self, state: Any, steps: int, *, speed: float, elapsed: float, is_main: bool) -> None:
        capped = steps >= state.max_steps
        state.max_steps = steps
        decay = steps - state.global_step if self._late else None
        self.schedule.set_total(steps, decay_steps=decay)
        self._fixed = True
        for callback in self.progress_callbacks:  # the progress bar was started with the upper bound
            bar = getattr(callback, "training_bar", None)
            if bar is not None:
                bar.total = steps
                bar.refresh()
        if not is_main:
            return
        measured = (f"steps {self.halfway_step + 1}-{self.calibration_step}" if self._measured_from is None
                    or self._measured_from[0] == state.global_step else
                    f"steps {self._measured_from[0] + 1}-{state.global_step}")
        logger.info(
            "time budget %.1f min: %.2f steps/s over %s, one validation %.1f s, %.1f min used by step %d: "
            "training to step %d%s%s", self.budget_minutes, speed, measured, self._validation or 0.0, elapsed / 60,
            state.global_step, steps, f", the learning rate decaying over the last {decay}" if decay else "",
            " (the --max-steps bound)" if capped else "",
        )
        if self.record_dir is not None:
            _write_record(self.record_dir, {
                "budget_minutes": self.budget_minutes, "max_steps": steps, "decay_steps": decay,
                "capped_by_max_steps": capped, "steps_per_second": round(speed, 4),
                "validation_seconds": round(self._validation or 0.0, 2), "fixed_at_step": state.global_step,
                "minutes_used_when_fixed": round(elapsed / 60, 2),
            })


class DecayEarlyStopping(EarlyStoppingCallback):
    """Early stopping for warmup_stable_decay that counts validations without improvement only once the decay has
    begun (`decay_start()`: the decay's first step, or None while unknown; read at each validation). At the peak
    rate, validation scores sit below a cosine run's and rise only in the decay, so a plateau of the stable phase
    would stop the run before the decay that makes the model. The factor at the decay's first step is still 1, so
    the first validation counted is the one after the update to `decay_start() + 2`, the first at a lower rate.

    Not restorable from a checkpoint's callback states (`decay_start` is a function; the recipe does not restore
    them): a resumed run counts its patience afresh, as with transformers' own callback by default."""

    def __init__(self, early_stopping_patience: int, *, decay_start: Callable[[], int | None]) -> None:
        super().__init__(early_stopping_patience=early_stopping_patience)
        self.decay_start = decay_start

    def check_metric_value(self, args: Any, state: Any, control: Any, metric_value: float) -> None:
        super().check_metric_value(args, state, control, metric_value)
        start = self.decay_start()
        if start is None or state.global_step <= start + 1:
            self.early_stopping_patience_counter = 0


__all__ = [
    "BUDGETED_SCHEDULES", "BudgetedSchedule", "DecayEarlyStopping", "TimeBudgetCallback", "budgeted_steps",
    "calibration_step", "decay_due", "read_record", "schedule_kwargs",
]
