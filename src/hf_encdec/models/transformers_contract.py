"""Where the models meet the parts of transformers that move between releases, all in one file.

1. **The generation cache's name.** Up to 5.23 `generate()` hands the cache to `forward` as `past_key_values` and reads
   it back from the output field of that name; 5.24 renamed both to `cache` (`past_key_values` stays a deprecated
   alias until 5.40). A model that knows only the old name still runs under 5.24, with the cache lost in `**kwargs`:
   every step decodes its newest token without history, and nothing raises. Every forward here therefore takes both
   names (`resolve_cache`) and fills the output field the installed release declares (`cache_field`, `output_cache`).
2. **Every override of a private transformers method** lives in the two mixins below, each with the reason it must
   exist. `tests/models/test_transformers_contract.py` checks that transformers still calls each of them (a private method
   can stop being called in any release, silently).
3. **A watch on `generate()`** (`CacheWatch`). A cache handed to `forward` under a name it does not take, or a cache
   that does not grow from one decoding step to the next, raises `CacheContractError` naming the installed
   transformers, instead of returning fluent-looking output decoded without history.
4. **Hub kernels at load** (`no_hub_kernels`). From 5.25 `from_pretrained` swaps layers for compute kernels fetched
   from the Hub unless told not to; every load of this library tells it not to.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import transformers
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import Seq2SeqLMOutput

#: the releases the whole test suite passed on (constraints.txt pins the first; 5.25.0 with accelerate 1.16.0)
TESTED_TRANSFORMERS = ("5.23.0", "5.24.0", "5.25.0")

#: the name transformers gives the generation cache in `ModelOutput`s and in the kwargs `generate()` hands `forward`
CACHE_FIELD = "cache" if "cache" in {field.name for field in dataclasses.fields(Seq2SeqLMOutput)} else "past_key_values"

#: the names a forward of this library takes the cache under
CACHE_ARGUMENTS = ("cache", "past_key_values")


#: transformers' switch for Hub kernels (`USE_HUB_KERNELS`); the values it reads as on
HUB_KERNELS_VARIABLE = "USE_HUB_KERNELS"
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})


def no_hub_kernels() -> dict[str, Any]:
    """The `from_pretrained` keywords of every load this library makes: no compute kernels from the Hub.

    transformers 5.25 turns `use_kernels` on by default (unless `USE_HUB_KERNELS` is off): on a GPU, layers such as
    GELU, SiLU and RMSNorm are swapped at load for kernels downloaded from the Hub, which reaches the network and
    changes the numbers from one release to the next. Every supported release takes `use_kernels=False` (5.23 and
    5.24 default to it). A user who wants Hub kernels sets `USE_HUB_KERNELS=1` explicitly, which turns them on for
    the library's loads on every release (the `kernels` package must be installed).

    >>> import os
    >>> no_hub_kernels() if os.environ.get("USE_HUB_KERNELS") is None else {"use_kernels": False}
    {'use_kernels': False}
    """
    return {"use_kernels": os.environ.get(HUB_KERNELS_VARIABLE, "").upper() in TRUE_VALUES}


class CacheContractError(RuntimeError):
    """The installed transformers and this library disagree about how the generation cache travels."""


def resolve_cache(cache: Any, past_key_values: Any) -> Any:
    """The cache a forward was given, under its 5.24 name `cache` or its older name `past_key_values` (both work on
    every supported release); two different objects under the two names are an error. Where the installed release
    calls it `cache`, the old name warns as transformers' own models do (a FutureWarning)."""
    if past_key_values is None:
        return cache
    if cache is not None and cache is not past_key_values:
        raise ValueError(
            "forward got two different caches, `cache` and `past_key_values` (the same argument under its name "
            "before transformers 5.24): pass one of them"
        )
    if CACHE_FIELD == "cache":
        warnings.warn(
            f"`past_key_values` is deprecated since transformers 5.24 (installed: {transformers.__version__}). "
            "Use `cache` instead.",
            FutureWarning,
            stacklevel=3,
        )
    return past_key_values


def cache_field(cache: Any) -> dict[str, Any]:
    """`{name: cache}` for building a transformers `ModelOutput`, under the field name of the installed release."""
    return {CACHE_FIELD: cache}


def output_cache(outputs: Any) -> Any:
    """The cache a `ModelOutput` carries (`outputs.cache` from 5.24 on, `outputs.past_key_values` before)."""
    return getattr(outputs, CACHE_FIELD, None)


def cache_length(cache: Any) -> int:
    """Tokens a cache holds: a transformers `Cache` (self-attention length) or a recurrent state that counts its steps."""
    if cache is None:
        return 0
    return int(cache.get_seq_length())


def _is_cache(value: Any) -> bool:
    return isinstance(value, Cache) or (hasattr(value, "get_seq_length") and hasattr(value, "reorder_cache"))


def _version_advice() -> str:
    return (
        f"installed: transformers {transformers.__version__}; hf_encdec is tested with transformers "
        f"{', '.join(TESTED_TRANSFORMERS)} (`pip install -c constraints.txt ...` from the repository installs the "
        "tested set)"
    )


class CacheWatch:
    """Checks every forward that one `generate()` call makes, through a forward pre-hook on the model.

    - a cache-like value under a keyword that `forward` does not declare raises: it would vanish into `**kwargs`;
    - with `use_cache`, the cache handed to call k > 0 must hold more tokens than the one handed to call k - 1. A
      release that stops passing back the cache the previous step returned (or passes it under another name) makes
      every step decode without its history; that raises too.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.arguments = set(inspect.signature(model.forward).parameters)
        self.previous_length: int | None = None
        self.handle: Any = None

    def __enter__(self) -> CacheWatch:
        self.handle = self.model.register_forward_pre_hook(self._before_forward, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()

    def _before_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        name = type(module).__name__
        for key, value in kwargs.items():
            if key not in self.arguments and _is_cache(value):
                raise CacheContractError(
                    f"generate() passed the decoding cache to {name}.forward as `{key}`, which it does not take "
                    f"(it takes {' or '.join(f'`{a}`' for a in CACHE_ARGUMENTS)}): every step would decode its newest "
                    f"token without history. {_version_advice()}"
                )
        if not kwargs.get("use_cache", True):
            return
        cache = next((kwargs[a] for a in CACHE_ARGUMENTS if kwargs.get(a) is not None), None)
        length = cache_length(cache)
        if self.previous_length is not None and length <= self.previous_length:
            raise CacheContractError(
                f"the decoding cache did not grow between two generate() steps of {name} (it held {length} tokens, "
                f"after {self.previous_length} at the step before): generate() did not hand forward the cache the "
                f"previous step returned, so this step would decode without history. {_version_advice()}"
            )
        self.previous_length = length


class ModelHooks:
    """Private `PreTrainedModel` methods the library's base model overrides (mix in before `PreTrainedModel`)."""

    def check_attention_implementation(self, attn_implementation: str | None) -> None:
        """Raise for a kernel this model cannot run (families override; by default every kernel is fine)."""

    def _check_and_adjust_attn_implementation(self, attn_implementation: str | None, *args: Any, **kwargs: Any) -> str:
        # Private: the one method that sees `attn_implementation` in every path that sets it (`from_pretrained`,
        # `_from_config`, `set_attn_implementation`), so a kernel the config cannot run (ALiBi on flash) fails there
        # with our message, not later inside the kernel.
        self.check_attention_implementation(attn_implementation)
        return super()._check_and_adjust_attn_implementation(attn_implementation, *args, **kwargs)  # type: ignore[misc]


class CheckedGenerationMixin(GenerationMixin):
    """`GenerationMixin` with the library's cache: every generating model takes this in its place.

    `generation_cache` says what the model decodes with: `"key_value"` (transformers' `DynamicCache`, in an
    `EncoderDecoderCache` for encoder-decoders, built by `generate`), `"recurrent"` (the model's own state, built by
    its first forward and carried back through the output's cache field) or `"none"` (a model that decodes in
    parallel and overrides `generate`).
    """

    generation_cache: ClassVar[str] = "key_value"
    #: None, or a function that takes the cache `generate()` has just built (still empty) and returns the one to
    #: decode with; `hf_encdec.speed` sets it on a model instance to its faster cache
    generation_cache_factory: Callable[[Any], Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # generate() asks for inspect.signature(self.forward) at every step of a model registered for remote code
        # (prepare_inputs_for_generation: does forward take `cache_position`?), as every model here is: a tenth of
        # a millisecond a step, 5% of a one-sequence decoding step. A function's signature does not change, so each
        # class's forward function carries it (`__signature__`, where inspect stops unwrapping). It goes on the
        # innermost function, whose signature it is: the decorators' wrappers keep their own (*args, **kwargs) for
        # tools that ask for it (torch's graph capture, accelerate's hooks).
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if inspect.isfunction(forward):
            inner = inspect.unwrap(forward)
            if "__signature__" not in inner.__dict__:
                inner.__signature__ = inspect.signature(inner)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # Private, and the only switch that stops generate() from building a DynamicCache (and handing a recurrent
        # decoder an EncoderDecoderCache it cannot use); transformers itself decides it by class name.
        return cls.generation_cache == "key_value"

    def _prepare_cache_for_generation(self, generation_config: Any, model_kwargs: dict, *args: Any, **kwargs: Any) -> Any:
        # Private: the only place where the cache generate() builds itself can be swapped before the first step, by
        # `generation_cache_factory` where one is set (a cache the caller passes in is left as it is).
        result = super()._prepare_cache_for_generation(generation_config, model_kwargs, *args, **kwargs)
        if self.generation_cache_factory is not None:
            for key in CACHE_ARGUMENTS:
                cache = model_kwargs.get(key)
                if cache is not None and not getattr(cache, "_is_user_defined", False):
                    model_kwargs[key] = self.generation_cache_factory(cache)
        return result

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """`GenerationMixin.generate`, watched by `CacheWatch`: a cache that transformers hands the model in a way
        it does not consume raises `CacheContractError` instead of decoding without history."""
        drafter = kwargs.get("assistant_model")
        if drafter is not None:
            from .speculative import check_drafter  # a sibling that imports this module's neighbours

            inputs = args[0] if args else kwargs.get("inputs", kwargs.get("input_ids"))
            given = kwargs.get("generation_config") or self.generation_config
            do_sample = kwargs.get("do_sample", getattr(given, "do_sample", False))
            check_drafter(self, drafter, batch=inputs.shape[0] if inputs is not None else None, do_sample=bool(do_sample))
        with CacheWatch(self):
            return super().generate(*args, **kwargs)


#: Every private transformers name the library uses, in one place: where transformers keeps it (a class or module)
#: -> the names. tests/models/test_transformers_contract.py checks each against the installed release (still there,
#: and still called or read by transformers itself), and scans the package for private transformers names missing
#: here: a release that renames one fails the suite instead of quietly skipping the library's code.
PRIVATE_NAMES: dict[str, tuple[str, ...]] = {
    # the models: the three overrides below (ModelHooks, CheckedGenerationMixin), `_init_weights` (the documented
    # place for a model's initialisation), and class attributes transformers reads at load
    "transformers.PreTrainedModel": (
        "_check_and_adjust_attn_implementation", "_init_weights", "_supports_sdpa", "_supports_flash_attn",
        "_supports_flex_attn", "_supports_attention_backend", "_no_split_modules", "_tied_weights_keys",
        "_keys_to_ignore_on_save", "_skip_keys_device_placement",
    ),
    "transformers.GenerationMixin": ("_supports_default_dynamic_cache", "_prepare_cache_for_generation"),
    # which attention kernel a model was loaded with
    "transformers.PreTrainedConfig": ("_attn_implementation",),
    # where a config was loaded from, a key of its dict (checkpoint averaging ignores it)
    "transformers.configuration_utils": ("_name_or_path",),
    # _init_weights leaves alone weights transformers already loaded or initialised; the recurrent layers checkpoint
    # chunks of decoder steps with the function `gradient_checkpointing_enable` set on them
    "transformers.modeling_utils": ("_is_hf_initialized", "_gradient_checkpointing_func"),
    # a cache the caller passed to generate() is left as it is: transformers marks it
    "transformers.generation.utils": ("_is_user_defined",),
    # hf_encdec.training.trainer: the COMPLETE marker goes where a checkpoint is known to be fully written, in the
    # folder it was written to; the token-batched loader drops the columns forward does not take, as the Trainer's does
    "transformers.Trainer": ("_save_checkpoint", "_get_output_dir", "_remove_unused_columns"),
    # hf_encdec.pipelines: transformers' documented way to write a pipeline, and what `pipeline()` loads for it
    "transformers.Pipeline": (
        "_sanitize_parameters", "_forward", "_prepare_generate_kwargs", "_pipeline_calls_generate",
        "_default_generation_config",
    ),
    "transformers.pipelines": ("_load_tokenizer", "_load_processor", "_load_image_processor", "_load_feature_extractor"),
}

#: every private transformers method overridden above, with the class that overrides it; the contract test checks
#: that transformers still calls each one
PRIVATE_OVERRIDES: dict[str, type] = {
    "_check_and_adjust_attn_implementation": ModelHooks,
    "_supports_default_dynamic_cache": CheckedGenerationMixin,
    "_prepare_cache_for_generation": CheckedGenerationMixin,
}
