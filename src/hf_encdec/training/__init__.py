"""Training recipes: token batching, the translation Trainer, presets and the end-to-end `train` job."""

from .batching import TokenBatchSampler
from .presets import PRESETS, build_config, preset_names
from .recipe import TrainOptions, run_training
from .scheduled_sampling import SamplingSchedule, ScheduledSamplingCallback
from .trainer import TranslationTrainer, latest_complete_checkpoint

__all__ = [
    "PRESETS",
    "SamplingSchedule",
    "ScheduledSamplingCallback",
    "TokenBatchSampler",
    "TrainOptions",
    "TranslationTrainer",
    "build_config",
    "latest_complete_checkpoint",
    "preset_names",
    "run_training",
]
