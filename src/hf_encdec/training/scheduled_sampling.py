"""Scheduled sampling (Bengio et al. 2015, arXiv 1506.03099) against exposure bias, driven by a `TrainerCallback`.

At training step i each decoder input is the gold previous token with probability eps_i and the model's own
prediction with probability p_i = 1 - eps_i (per token). The paper's decay schedules for eps_i (section 2.4):

    linear            eps_i = max(epsilon, k - c * i)      0 <= epsilon < 1 the least teacher forcing kept
    exponential       eps_i = k ** i                        k < 1
    inverse_sigmoid   eps_i = k / (k + exp(i / k))          k >= 1

`ScheduledSamplingCallback` writes p_i into `model.config.scheduled_sampling_probability` at the start of every
optimizer step, which the autoregressive seq2seq models read in training mode (0, the default, is exactly teacher
forcing), and restores the value it found when training ends; like every training setting it is never written to
config.json. A recurrent decoder then feeds back one token at a time, as the paper does; a Transformer decoder (and
the pointer-generator) decodes in passes (Mihaylova & Martins 2019, arXiv 1906.07651; see `TransformerConfig`). A model
that would ignore the probability (the non-autoregressive model, encoder-only and decoder-only models) is refused.

>>> schedule = SamplingSchedule("inverse_sigmoid", k=100.0)
>>> [round(schedule.sampling_probability(step), 3) for step in (0, 500, 1000)]
[0.01, 0.597, 0.995]
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)

SCHEDULES = ("linear", "exponential", "inverse_sigmoid")


@dataclass(frozen=True)
class SamplingSchedule:
    """A decay schedule of Bengio et al. for the teacher-forcing probability eps_i, with the paper's k, c, epsilon.

    `max_probability` caps p_i = 1 - eps_i (for the linear schedule it equals 1 - epsilon).
    """

    kind: str = "inverse_sigmoid"
    k: float = 1000.0
    c: float = 1e-3
    epsilon: float = 0.0
    max_probability: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule kind={self.kind!r} is not supported; valid values: {SCHEDULES}")
        if self.kind == "exponential" and not 0.0 < self.k < 1.0:
            raise ValueError(f"the exponential schedule eps_i = k^i needs 0 < k < 1, got k={self.k}")
        if self.kind == "inverse_sigmoid" and self.k < 1.0:
            raise ValueError(f"the inverse sigmoid schedule eps_i = k / (k + exp(i / k)) needs k >= 1, got k={self.k}")
        if self.kind == "linear" and (self.c < 0.0 or not 0.0 <= self.epsilon < 1.0):
            raise ValueError(
                f"the linear schedule needs c >= 0 and 0 <= epsilon < 1, got c={self.c}, epsilon={self.epsilon}"
            )
        if not 0.0 <= self.max_probability <= 1.0:
            raise ValueError(f"max_probability must be in [0, 1], got {self.max_probability}")

    def teacher_forcing_probability(self, step: int) -> float:
        """eps_i, the probability of feeding the gold token at training step `step`."""
        if self.kind == "linear":
            return min(1.0, max(self.epsilon, self.k - self.c * step))
        if self.kind == "exponential":
            return self.k**step
        exponent = step / self.k
        return 0.0 if exponent > 700 else self.k / (self.k + math.exp(exponent))  # exp overflows past ~709

    def sampling_probability(self, step: int) -> float:
        """p_i = 1 - eps_i, the probability of feeding the model's own prediction."""
        return min(self.max_probability, 1.0 - self.teacher_forcing_probability(step))


class ScheduledSamplingCallback(TrainerCallback):
    """Moves `config.scheduled_sampling_probability` along a `SamplingSchedule` as the Trainer's global step grows.

    >>> from hf_encdec.training import ScheduledSamplingCallback
    >>> callback = ScheduledSamplingCallback("linear", k=1.0, c=0.01, epsilon=0.25)
    >>> [round(callback.schedule.sampling_probability(step), 2) for step in (0, 10, 500)]
    [0.0, 0.1, 0.75]

    Use: `Seq2SeqTrainer(..., callbacks=[ScheduledSamplingCallback("inverse_sigmoid", k=500)])`.
    """

    def __init__(self, kind: str = "inverse_sigmoid", **schedule_kwargs: float) -> None:
        self.schedule = SamplingSchedule(kind, **schedule_kwargs)
        self._initial: float | None = None

    @classmethod
    def from_spec(cls, spec: str) -> ScheduledSamplingCallback:
        """The callback of a command-line schedule `KIND[:NAME=VALUE,...]`, e.g. `inverse_sigmoid:k=500` or
        `linear:k=1,c=0.001,epsilon=0.5` (the `SamplingSchedule` fields).

        >>> ScheduledSamplingCallback.from_spec("inverse_sigmoid:k=500,max_probability=0.25").schedule.k
        500.0
        """
        kind, _, rest = spec.partition(":")
        values: dict[str, float] = {}
        for item in filter(None, rest.split(",")):
            name, equals, value = item.partition("=")
            fields = ("k", "c", "epsilon", "max_probability")
            if not equals or name not in fields:
                raise ValueError(f"scheduled sampling {spec!r}: {item!r} is not NAME=VALUE with NAME one of {fields}")
            try:
                values[name] = float(value)
            except ValueError as error:
                raise ValueError(f"scheduled sampling {spec!r}: {name}={value!r} is not a number") from error
        return cls(kind, **values)

    @staticmethod
    def _config(model: object) -> object:
        config = getattr(model, "config", None)
        reads = callable(getattr(model, "samples_own_predictions", None))
        if config is None or not reads or not hasattr(config, "scheduled_sampling_probability"):
            raise ValueError(
                f"ScheduledSamplingCallback needs an autoregressive seq2seq model that reads "
                f"scheduled_sampling_probability (the RNN, Transformer and pointer-generator families), got "
                f"{type(model).__name__}, which would ignore it"
            )
        return config

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: object = None,
        **kwargs: object,
    ) -> None:
        config = self._config(model)
        self._initial = config.scheduled_sampling_probability
        config.scheduled_sampling_probability = self.schedule.sampling_probability(state.global_step)

    def on_step_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: object = None,
        **kwargs: object,
    ) -> None:
        config = self._config(model)
        config.scheduled_sampling_probability = self.schedule.sampling_probability(state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: object = None,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if model is not None and logs is not None and "loss" in logs:
            probability = model.config.scheduled_sampling_probability
            logger.info("step %d: scheduled sampling probability %.4f", state.global_step, probability)

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: object = None,
        **kwargs: object,
    ) -> None:
        if self._initial is not None:
            self._config(model).scheduled_sampling_probability = self._initial
