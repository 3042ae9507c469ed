"""Training to a time budget (`--time-budget`): the step count fixed at the end of the warm-up (or, for
warmup_stable_decay, when its decay has to begin), the learning-rate schedule ending at that step, the record a
resumed run trains on.

Tests never time things: the runs here take budgets whose step count does not depend on the machine's speed (one
spent before the warm-up ends, one no run reaches before `max_steps`); `budgeted_steps` is checked on its own."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import EarlyStoppingCallback, TrainerCallback, TrainerControl, TrainerState, get_scheduler

from hf_encdec.cli import main
from hf_encdec.training import TrainOptions, run_training
from hf_encdec.training.recipe import _early_stopping, _training_arguments
from hf_encdec.training.time_budget import (
    BUDGETED_SCHEDULES,
    RECORD_FILE,
    DECAY_SHARE,
    DECAY_TYPE,
    WSD,
    BudgetedSchedule,
    TimeBudgetCallback,
    budgeted_steps,
    calibration_step,
    schedule_kwargs,
)


def _transformers_factor(name: str, warmup: int, total: int, decay: int | None = None) -> Any:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    kwargs = {"num_decay_steps": decay, "decay_type": DECAY_TYPE} if name == WSD else {}
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total,
                         scheduler_specific_kwargs=kwargs).lr_lambdas[0]


@pytest.mark.parametrize("name", BUDGETED_SCHEDULES)
def test_the_schedule_is_transformers_own_for_the_step_count_set_later(name: str) -> None:
    schedule = BudgetedSchedule(name, warmup_steps=30, total_steps=5000)
    before = _transformers_factor(name, 30, 5000, decay=1000)  # warmup_stable_decay: a fifth of the run by default
    assert [schedule(step) for step in range(0, 5001, 7)] == [before(step) for step in range(0, 5001, 7)]
    schedule.set_total(400)
    after = _transformers_factor(name, 30, 400, decay=80)
    assert [schedule(step) for step in range(401)] == [after(step) for step in range(401)]
    trained = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
    scheduler = schedule.scheduler(trained)
    schedule.set_total(100, decay_steps=40 if name == WSD else None)  # the scheduler made before follows the new count
    for _ in range(60):
        trained.step()
        scheduler.step()
    expected = _transformers_factor(name, 30, 100, decay=40)(60)
    assert scheduler.get_last_lr() == [pytest.approx(2.0 * expected)]


def test_warmup_stable_decay_holds_its_rate_then_decays_over_its_last_steps() -> None:
    assert DECAY_SHARE == 0.2 and schedule_kwargs(WSD, warmup_steps=300, total_steps=4000)["num_decay_steps"] == 800
    schedule = BudgetedSchedule(WSD, warmup_steps=30, total_steps=5000)
    schedule.set_total(400, decay_steps=150)
    assert schedule(15) == pytest.approx(0.5) and schedule(30) == schedule(249) == 1.0
    assert 1.0 == schedule(250) > schedule(251) > schedule(399) > 0.0 == schedule(400)
    with pytest.raises(ValueError, match=r"decay_steps=7 sets the decay of the warmup_stable_decay schedule, not of 'cosine'"):
        schedule_kwargs("cosine", warmup_steps=30, total_steps=400, decay_steps=7)
    with pytest.raises(ValueError, match=r"decay_steps=390 does not fit a run of 400 steps.*between 1 and 370"):
        schedule_kwargs(WSD, warmup_steps=30, total_steps=400, decay_steps=390)


def test_a_schedule_whose_shape_ignores_the_step_count_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"schedules linear, cosine, constant_with_warmup, warmup_stable_decay, not 'inverse_sqrt'"):
        BudgetedSchedule("inverse_sqrt", warmup_steps=10, total_steps=100)


@pytest.mark.parametrize(
    ("speed", "validation", "eval_steps", "left"),
    [(2.0, 10.0, 500, 900.0), (3.1, 16.0, 1000, 1500.0), (0.5, 1.0, 7, 333.0), (10.0, 0.0, 1000, 60.0)],
)
def test_budgeted_steps_are_the_most_that_fit(speed: float, validation: float, eval_steps: int, left: float) -> None:
    def cost(total: int) -> float:  # steps after 300, and a validation at each multiple of eval_steps and at the end
        ends = {s for s in range(301, total + 1) if s % eval_steps == 0} | {total}
        return (total - 300) / speed + validation * len(ends)

    steps = budgeted_steps(budget_seconds=100 + left, elapsed_seconds=100, step=300, steps_per_second=speed,
                           validation_seconds=validation, eval_steps=eval_steps, max_steps=100_000)
    assert cost(steps) <= left < cost(steps + 1)


def test_budgeted_steps_stop_at_max_steps_and_take_a_step_when_the_budget_is_spent() -> None:
    common = {"step": 300, "steps_per_second": 2.0, "validation_seconds": 5.0, "eval_steps": 100}
    assert budgeted_steps(budget_seconds=1e6, elapsed_seconds=10, max_steps=4000, **common) == 4000
    assert budgeted_steps(budget_seconds=60, elapsed_seconds=90, max_steps=4000, **common) == 301


def _options(output: Path, **extra: Any) -> TrainOptions:
    values: dict[str, Any] = {
        "data": "synthetic:reverse", "output_dir": str(output), "preset": "transformer-tiny", "vocab_size": 300,
        "max_tokens": 256, "warmup_steps": 20, "max_steps": 30, "eval_steps": 8, "eval_size": 8, "test_size": 8,
        "num_beams": 1, "max_new_tokens": 12, "early_stopping_patience": 100, "save_total_limit": 10,
        "logging_steps": 1,
    }
    values.update(extra)
    return TrainOptions(**values)


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / f"checkpoint-{step}" / "model.safetensors")


def _learning_rates(report_folder: Path, step: int) -> dict[int, float]:
    state = json.loads((report_folder / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").read_text())
    return {entry["step"]: entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry}


@pytest.mark.parametrize(("schedule", "plain_decay"), [("cosine", None), (WSD, 1)])
def test_a_spent_budget_ends_the_run_one_step_after_the_warm_up_as_a_plain_run_of_that_many_steps(
    tmp_path: Path, schedule: str, plain_decay: int | None
) -> None:
    budgeted = run_training(_options(tmp_path / "budgeted", time_budget=1e-6, lr_scheduler_type=schedule))
    fixed = calibration_step(20) + 1
    record = json.loads((tmp_path / "budgeted" / RECORD_FILE).read_text())
    assert record["max_steps"] == budgeted["global_step"] == fixed and not record["capped_by_max_steps"]
    assert record["fixed_at_step"] == 20 and record["steps_per_second"] > 0 and record["budget_minutes"] == 1e-6
    assert record["decay_steps"] == plain_decay and budgeted["time_budget"] == record
    plain = run_training(_options(tmp_path / "plain", max_steps=fixed, lr_scheduler_type=schedule,
                                  decay_steps=plain_decay))
    assert plain["global_step"] == fixed and plain["time_budget"] is None
    # the same schedule, batches and dropout masks (the timed validation draws none): the same weights, bit for bit
    for name, tensor in _weights(tmp_path / "plain", fixed).items():
        torch.testing.assert_close(_weights(tmp_path / "budgeted", fixed)[name], tensor, rtol=0, atol=0, msg=name)
    assert _learning_rates(tmp_path / "budgeted", fixed) == _learning_rates(tmp_path / "plain", fixed)


def test_a_plain_warmup_stable_decay_run_holds_its_rate_until_its_decay_steps(tmp_path: Path) -> None:
    assert main(["train", "--data", "synthetic:reverse", "--output-dir", str(tmp_path / "run"), "--preset",
                 "transformer-tiny", "--vocab-size", "300", "--max-tokens", "256", "--warmup-steps", "20",
                 "--max-steps", "30", "--eval-steps", "10", "--eval-size", "8", "--test-size", "8", "--num-beams",
                 "1", "--max-new-tokens", "12", "--logging-steps", "1", "--lr-scheduler-type", WSD,
                 "--decay-steps", "6"]) == 0
    rates = _learning_rates(tmp_path / "run", 30)  # step s's rate: the schedule's factor after s - 1 steps
    top = TrainOptions().learning_rate
    assert rates[20] < top and [rates[step] for step in range(21, 26)] == [pytest.approx(top)] * 5
    assert top > rates[26] > rates[27] > rates[28] > rates[29] > rates[30] > 0.0
    factor = _transformers_factor(WSD, 20, 30, decay=6)
    assert [rates[step] for step in range(1, 31)] == [pytest.approx(top * factor(step - 1)) for step in range(1, 31)]


class _Crash(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
        if state.global_step == 26:
            raise KeyboardInterrupt("simulated crash at step 26")


def test_a_budgeted_run_resumed_after_the_warm_up_trains_to_its_recorded_step(tmp_path: Path) -> None:
    """A budget no run spends stops at max_steps; the crashed copy resumes from step 24 and must not measure again
    (its new process has used almost nothing of the budget) but train to the step it recorded."""
    straight = run_training(_options(tmp_path / "straight", time_budget=1e4))
    assert straight["global_step"] == 30 and straight["time_budget"]["capped_by_max_steps"]
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        run_training(_options(crashed, time_budget=1e4), callbacks=[_Crash()])
    assert json.loads((crashed / RECORD_FILE).read_text())["max_steps"] == 30
    # the record is what the resumed run trains to, not a new measurement: changed, it moves the run's end
    record = json.loads((crashed / RECORD_FILE).read_text())
    spare = tmp_path / "spare"
    shutil.copytree(crashed, spare)
    (spare / RECORD_FILE).write_text(json.dumps({**record, "max_steps": 28}))
    assert run_training(_options(spare, time_budget=1e4, resume=True))["global_step"] == 28
    assert main(["train", "--output-dir", str(crashed), "--resume"]) == 0
    resumed = json.loads((crashed / "eval_results.json").read_text())
    assert resumed["global_step"] == 30
    for name, tensor in _weights(tmp_path / "straight", 30).items():
        torch.testing.assert_close(_weights(crashed, 30)[name], tensor, rtol=0, atol=0, msg=name)


def test_a_budgeted_run_resumed_without_its_record_says_how_to_go_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(_options(run, time_budget=1e4), callbacks=[_Crash()])
    (run / RECORD_FILE).unlink()
    with pytest.raises(ValueError, match=r"resumes at step 24.*time_budget.json has neither.*--max-steps and the step count"):
        run_training(_options(run, time_budget=1e4, resume=True))


def test_warmup_stable_decay_decays_at_the_upper_bound_and_resumes_its_stable_phase_with_the_minutes_used(
    tmp_path: Path,
) -> None:
    """A budget no run spends: the decay begins where max_steps's own begins (step 32 of 40). The crashed copy stops
    at step 26, before that: its record holds the minutes used at each checkpoint, and the resumed run goes on
    measuring from step 24 to the same weights as the run never stopped."""
    straight = run_training(_options(tmp_path / "straight", time_budget=1e4, lr_scheduler_type=WSD, max_steps=40))
    record = straight["time_budget"]
    assert straight["global_step"] == record["max_steps"] == 40 and record["capped_by_max_steps"]
    assert record["fixed_at_step"] == 32 and record["decay_steps"] == 8
    crashed = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        run_training(_options(crashed, time_budget=1e4, lr_scheduler_type=WSD, max_steps=40), callbacks=[_Crash()])
    progress = json.loads((crashed / RECORD_FILE).read_text())
    assert progress["max_steps"] is None and sorted(progress["progress"], key=int) == ["8", "16", "24"]
    assert 0 < progress["progress"]["8"] < progress["progress"]["16"] < progress["progress"]["24"]
    spare = tmp_path / "spare"
    shutil.copytree(crashed, spare)
    assert main(["train", "--output-dir", str(crashed), "--resume"]) == 0
    assert json.loads((crashed / "eval_results.json").read_text())["time_budget"] == {**record, **{
        key: json.loads((crashed / RECORD_FILE).read_text())[key]
        for key in ("steps_per_second", "validation_seconds", "minutes_used_when_fixed")}}
    for name, tensor in _weights(tmp_path / "straight", 40).items():
        torch.testing.assert_close(_weights(crashed, 40)[name], tensor, rtol=0, atol=0, msg=name)
    # without the minutes of the checkpoint it resumes, the budget cannot go on
    (spare / RECORD_FILE).write_text(json.dumps({**progress, "progress": {"8": 0.1, "16": 0.2}}))
    with pytest.raises(ValueError, match=r"resumes at step 24.*neither the step count nor the minutes.*--decay-steps"):
        run_training(_options(spare, time_budget=1e4, lr_scheduler_type=WSD, max_steps=40, resume=True))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"time_budget": 0.0}, "must be positive, got 0.0"),
        ({"time_budget": math.inf}, "must be positive, got inf"),
        ({"time_budget": 5.0, "lr_scheduler_type": "inverse_sqrt"}, "not 'inverse_sqrt'"),
        ({"time_budget": 5.0, "glancing_ratio_end": 0.3}, "give --max-steps instead of --time-budget"),
        ({"time_budget": 5.0, "warmup_steps": 40}, r"warm-up \(40 steps\).*max_steps=30.*raise --max-steps"),
        ({"time_budget": 5.0, "lr_scheduler_type": WSD, "decay_steps": 5}, "a time budget begins the decay"),
        ({"decay_steps": 5}, r"decay_steps=5 sets the decay of the warmup_stable_decay schedule, not of 'cosine'"),
    ],
)
def test_bad_budget_settings_fail_before_any_work(tmp_path: Path, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_training(_options(tmp_path / "run", **extra))
    assert not (tmp_path / "run").exists()


def test_the_command_line_takes_a_budget_in_minutes(tmp_path: Path) -> None:
    assert main(["train", "--data", "synthetic:reverse", "--output-dir", str(tmp_path / "run"), "--preset",
                 "transformer-tiny", "--vocab-size", "300", "--max-tokens", "256", "--warmup-steps", "20",
                 "--max-steps", "30", "--eval-steps", "8", "--eval-size", "8", "--test-size", "8", "--num-beams", "1",
                 "--max-new-tokens", "12", "--time-budget", "0.000001"]) == 0
    options = json.loads((tmp_path / "run" / "train_options.json").read_text())
    assert options["time_budget"] == 1e-6 and options["max_steps"] == 30
    assert json.loads((tmp_path / "run" / "eval_results.json").read_text())["global_step"] == 21
    assert dataclasses.asdict(TrainOptions())["time_budget"] is None


@pytest.mark.slow
def test_two_processes_stop_at_the_step_count_of_the_main_process(tmp_path: Path) -> None:
    """Each process measures its own speed; the main process's step count is broadcast (gloo), so both stop at the
    recorded step instead of one waiting for the other's next gradient. warmup_stable_decay broadcasts at the end of
    the warm-up and every CHECK_EVERY steps after it until its decay begins: each process must take part in each."""
    command = ["torchrun", "--nproc_per_node", "2", "--master_port", "29547", "-m", "hf_encdec"]
    command[0] = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    completed = subprocess.run(
        [*command, "train", "--data", "synthetic:reverse", "--preset", "transformer-tiny", "--vocab-size", "300",
         "--max-tokens", "256", "--warmup-steps", "20", "--max-steps", "60", "--eval-steps", "8", "--eval-size", "8",
         "--test-size", "8", "--num-beams", "1", "--max-new-tokens", "12", "--early-stopping-patience", "100",
         "--time-budget", "0.15", "--lr-scheduler-type", WSD,
         "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "eval_results.json").read_text())
    assert report["processes"] == 2
    assert 21 <= report["global_step"] == report["time_budget"]["max_steps"] <= 60


def _stops(callback: Any, scores: dict[int, float], args: Any) -> list[int]:
    """The steps at which `callback` asks to stop, shown validation chrF `scores` by step (best first, then worse)."""
    state, stopped = TrainerState(), []
    for step, score in scores.items():
        state.global_step = step
        control = TrainerControl()
        callback.on_evaluate(args, state, control, metrics={"eval_chrf": score})
        state.best_metric = max(state.best_metric or score, score)
        if control.should_training_stop:
            stopped.append(step)
    return stopped


def test_early_stopping_under_warmup_stable_decay_waits_for_the_decay(tmp_path: Path) -> None:
    """At the peak rate a plateau of validations is expected: patience counts only from the decay's first step on,
    where plain early stopping would end the run before its decay."""
    options = TrainOptions(data="synthetic:reverse", max_steps=40, warmup_steps=4, lr_scheduler_type=WSD,
                           early_stopping_patience=2)
    args = _training_arguments(options, tmp_path)
    assert args.metric_for_best_model == "chrf" and args.greater_is_better
    callback = _early_stopping(options, args, None)
    scores = {4: 30.0, 8: 29.0, 12: 29.5, 16: 28.0, 20: 29.9, 24: 29.0, 28: 29.0, 32: 29.0, 33: 29.0, 36: 28.0, 40: 27.0}
    assert _stops(EarlyStoppingCallback(early_stopping_patience=2), scores, args) == [12, 16, 20, 24, 28, 32, 33, 36, 40]
    # the decay takes the last 8 of 40 steps: its factor at step 32 is still 1, so step 34 is the first lower rate
    assert _stops(callback, scores, args) == [40]
    cosine = dataclasses.replace(options, lr_scheduler_type="cosine")
    assert type(_early_stopping(cosine, _training_arguments(cosine, tmp_path), None)) is EarlyStoppingCallback
    schedule = BudgetedSchedule(WSD, warmup_steps=4, total_steps=40)
    budget = TimeBudgetCallback(10.0, started=0.0, schedule=schedule, record_dir=None)
    budgeted = _early_stopping(options, args, budget)
    assert _stops(budgeted, scores, args) == []  # the budget has not fixed the count: the decay has not begun
    # the count fixed at step 30 (a private call: the public way, a run, fixes it where max_steps's decay begins)
    budget._fix(TrainerState(global_step=30, max_steps=40), 40, speed=1.0, elapsed=0.0, is_main=False)
    assert budget.decay_start() == 30 and _stops(budgeted, scores, args) == [33, 36, 40]
