"""The generation contract with transformers (models/transformers_contract.py): the cache under both of its names,
every private override still called by transformers, and loud errors when transformers hands the cache over in a way
the models would not consume (the drift of 5.24, simulated on whatever release is installed)."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import GenerationMixin, PreTrainedModel

import hf_encdec
from helpers import build, token_ids
from hf_encdec.models import transformers_contract as contract
from hf_encdec.models.rnn_layers import RNNDecoderState
from hf_encdec.registration import AUTO_CLASSES
from rnn_helpers import build_rnn, padded_sources

pytestmark = pytest.mark.contract

FAMILIES = ["seq2seq", "pointer_generator", "decoder", "rnn"]


def _model(family: str) -> torch.nn.Module:
    if family == "rnn":
        return build_rnn({"attention_type": "bahdanau", "input_feeding": False})
    return build(family)


def _generate(model: torch.nn.Module, **kwargs: Any) -> torch.Tensor:
    source = token_ids(length=5)
    return model.generate(source, max_new_tokens=4, min_new_tokens=4, **kwargs)


def test_the_cache_field_is_the_installed_releases_name() -> None:
    renamed = Version(transformers.__version__) >= Version("5.24")
    assert contract.CACHE_FIELD == ("cache" if renamed else "past_key_values")


def test_the_pinned_transformers_is_a_tested_release() -> None:
    constraints = (Path(__file__).parents[2] / "constraints.txt").read_text()
    pinned = re.search(r"^transformers==(\S+)$", constraints, flags=re.MULTILINE).group(1)
    assert pinned in contract.TESTED_TRANSFORMERS


@pytest.mark.parametrize("family", FAMILIES)
def test_both_cache_names_decode_incrementally_like_the_full_forward(family: str) -> None:
    model = _model(family)
    source, target = token_ids(length=5), token_ids(length=4)
    if family == "decoder":
        full = model(target).logits
        steps = {}
        for name in contract.CACHE_ARGUMENTS:
            cache, logits = None, []
            for t in range(target.shape[1]):
                out = model(target[:, t : t + 1], use_cache=True, **{name: cache})
                cache = contract.output_cache(out)
                logits.append(out.logits)
            steps[name] = torch.cat(logits, dim=1)
    else:
        full = model(input_ids=source, decoder_input_ids=target).logits
        encoder_outputs = model.get_encoder()(input_ids=source, return_dict=True)
        steps = {}
        for name in contract.CACHE_ARGUMENTS:
            cache, logits = None, []
            for t in range(target.shape[1]):
                out = model(
                    input_ids=source if family == "pointer_generator" else None,
                    encoder_outputs=encoder_outputs,
                    decoder_input_ids=target[:, t : t + 1],
                    use_cache=True,
                    **{name: cache},
                )
                cache = contract.output_cache(out)
                logits.append(out.logits)
            steps[name] = torch.cat(logits, dim=1)
    assert cache is not None and contract.cache_length(cache) == target.shape[1]
    for name in contract.CACHE_ARGUMENTS:
        torch.testing.assert_close(steps[name], full, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_carries_its_own_signature(family: str) -> None:
    # generate() reads inspect.signature(model.forward) at every step of a remote-code model: the signature kept on
    # the innermost forward function must be the one inspect finds through the decorators
    model = _model(family)
    inner = inspect.unwrap(type(model).forward)
    assert "__signature__" in inner.__dict__
    kept = inspect.signature(model.forward)
    del inner.__signature__
    try:
        assert inspect.signature(model.forward) == kept
        assert "cache" in kept.parameters and "past_key_values" in kept.parameters
    finally:
        inner.__signature__ = inspect.signature(inner)
    # the decorators' wrappers keep their own signature for tools that bind to it (torch's graph capture), and a
    # wrapper made from the bound method (accelerate's hooks) sees no `self`
    wrapper = inspect.signature(type(model).forward, follow_wrapped=False)
    assert type(model).forward is inner or any(p.kind is p.VAR_POSITIONAL for p in wrapper.parameters.values())
    hooked = functools.update_wrapper(functools.partial(model.forward), model.forward)
    assert "self" not in inspect.signature(hooked).parameters


def test_two_different_caches_under_the_two_names_are_refused() -> None:
    model = _model("decoder")
    first = contract.output_cache(model(token_ids(length=2), use_cache=True))
    second = contract.output_cache(model(token_ids(length=2), use_cache=True))
    with pytest.raises(ValueError, match="two different caches"):
        model(token_ids(length=1), cache=first, past_key_values=second, use_cache=True)
    model(token_ids(length=1), cache=first, past_key_values=first, use_cache=True)  # the same object twice is fine


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_hands_back_the_cache_the_model_returned(family: str) -> None:
    """One generate() call, every forward recorded: step k > 0 receives the object step k - 1 returned (or, for a
    cache updated in place, the same object), grown by one token."""
    model = _model(family)
    seen: list[tuple[Any, Any, int]] = []  # (cache given, cache returned, its length right after the step)

    def record(module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        given = next((kwargs[a] for a in contract.CACHE_ARGUMENTS if kwargs.get(a) is not None), None)
        returned = contract.output_cache(output)
        seen.append((given, returned, contract.cache_length(returned)))

    handle = model.register_forward_hook(record, with_kwargs=True)
    try:
        _generate(model, num_beams=2)
    finally:
        handle.remove()
    assert len(seen) == 4
    for (_, returned, _), (given, _, _) in zip(seen, seen[1:]):
        assert given is returned
    lengths = [length for _, _, length in seen]
    assert lengths == list(range(lengths[0], lengths[0] + 4)) and lengths[0] >= 1
    expected = RNNDecoderState if family == "rnn" else transformers.cache_utils.Cache
    assert isinstance(seen[-1][1], expected)


# ---- every private override is still called by transformers ----


def _spy(monkeypatch: pytest.MonkeyPatch, name: str) -> list[str]:
    """Count the calls transformers makes to `PRIVATE_OVERRIDES[name]`."""
    owner = contract.PRIVATE_OVERRIDES[name]
    original = owner.__dict__[name]
    calls: list[str] = []
    if isinstance(original, classmethod):

        def counted(cls: type, *args: Any, **kwargs: Any) -> Any:
            calls.append(cls.__name__)
            return original.__func__(cls, *args, **kwargs)

        monkeypatch.setattr(owner, name, classmethod(counted))
    else:

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(type(self).__name__)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    return calls


def _trigger_attention_check() -> None:
    model = _model("seq2seq")
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager"


def _trigger_default_cache_switch() -> None:
    _generate(_model("rnn"), num_beams=2)


def _trigger_cache_preparation() -> None:
    model = _model("seq2seq")
    built: list[Any] = []  # the hook the speed paths set: it sees the cache generate() built, before the first step
    model.generation_cache_factory = lambda cache: built.append(cache) or cache
    out = model.generate(token_ids(length=5), max_new_tokens=3, num_beams=2, return_dict_in_generate=True)
    assert len(built) == 1 and contract.output_cache(out) is built[0]


TRIGGERS = {
    "_check_and_adjust_attn_implementation": _trigger_attention_check,
    "_supports_default_dynamic_cache": _trigger_default_cache_switch,
    "_prepare_cache_for_generation": _trigger_cache_preparation,
}


@pytest.mark.parametrize("name", sorted(contract.PRIVATE_OVERRIDES))
def test_transformers_still_calls_each_private_override(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy(monkeypatch, name)
    TRIGGERS[name]()
    assert calls, (
        f"transformers {transformers.__version__} no longer calls {name}: the override in "
        "models/transformers_contract.py has no effect; find what replaced it before trusting generate()"
    )


def test_alibi_on_flash_is_refused_by_the_attention_check() -> None:
    with pytest.raises(ValueError, match="alibi"):
        build("seq2seq", {"position_type": "alibi"}).set_attn_implementation("flash_attention_2")


def _private_transformers_methods(cls: type) -> set[str]:
    """Names of private methods of PreTrainedModel / GenerationMixin that `cls` itself defines."""
    names = set()
    for name, value in vars(cls).items():
        if not name.startswith("_") or name.startswith("__"):
            continue
        if not (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod))):
            continue
        if hasattr(PreTrainedModel, name) or hasattr(GenerationMixin, name):
            names.add(name)
    return names


#: private methods transformers documents as the place to override (not drift-prone glue)
DOCUMENTED_EXTENSION_POINTS = {"_init_weights"}


def test_every_private_override_lives_in_the_contract_module_and_has_a_trigger() -> None:
    assert set(TRIGGERS) == set(contract.PRIVATE_OVERRIDES)
    for name, owner in contract.PRIVATE_OVERRIDES.items():
        assert name in vars(owner) and owner.__module__ == contract.__name__
    model_classes = {model for table in AUTO_CLASSES.values() for model in table.values()}
    for model_class in model_classes:
        for cls in model_class.__mro__:
            if not cls.__module__.startswith("hf_encdec.models") or cls.__module__ == contract.__name__:
                continue
            stray = _private_transformers_methods(cls) - DOCUMENTED_EXTENSION_POINTS
            assert not stray, f"{cls.__module__}.{cls.__name__} overrides private transformers methods {stray}"


# ---- drift, simulated: a release that hands the cache over differently must fail loudly ----


def _rename_cache_input(model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch, new_name: str | None) -> None:
    """Make generate() hand forward the cache under `new_name` (None: not at all), as a future release might."""
    prepare = model.prepare_inputs_for_generation

    def drifted(*args: Any, **kwargs: Any) -> dict:
        inputs = prepare(*args, **kwargs)
        for name in contract.CACHE_ARGUMENTS:
            cache = inputs.pop(name, None)
            if cache is not None and new_name is not None:
                inputs[new_name] = cache
        return inputs

    monkeypatch.setattr(model, "prepare_inputs_for_generation", drifted)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cache_under_a_name_forward_does_not_take_raises(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(family)
    _rename_cache_input(model, monkeypatch, "kv_state")
    with pytest.raises(contract.CacheContractError, match=rf"`kv_state`.*transformers {re.escape(transformers.__version__)}"):
        _generate(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_cache_that_does_not_grow_raises(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(family)
    _rename_cache_input(model, monkeypatch, None)
    with pytest.raises(contract.CacheContractError, match=rf"did not grow.*transformers {re.escape(transformers.__version__)}"):
        _generate(model, num_beams=2)


def test_a_release_that_stops_reading_the_returned_state_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recurrent state is a new object each step: if generate() stopped reading it from the output, the next
    step would get the stale one. Simulated by dropping it from the model kwargs between steps."""
    model = _model("rnn")
    update = model._update_model_kwargs_for_generation

    def forgetful(outputs: Any, model_kwargs: dict, *args: Any, **kwargs: Any) -> dict:
        updated = update(outputs, model_kwargs, *args, **kwargs)
        for name in contract.CACHE_ARGUMENTS:
            updated.pop(name, None)
        return updated

    monkeypatch.setattr(model, "_update_model_kwargs_for_generation", forgetful)
    with pytest.raises(contract.CacheContractError, match="did not grow"):
        _generate(model)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_watch_stays_quiet_without_a_cache(family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(family)
    _rename_cache_input(model, monkeypatch, None)
    assert _generate(model, use_cache=False).shape[1] >= 4


def test_the_watch_is_removed_after_generate() -> None:
    model = _model("seq2seq")
    _generate(model)
    assert not model._forward_pre_hooks


def test_recurrent_state_counts_its_tokens_through_beam_reordering() -> None:
    model = _model("rnn")
    ids, mask = padded_sources()
    out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=token_ids(length=3), use_cache=True)
    state = contract.output_cache(out)
    assert state.get_seq_length() == 3
    state.reorder_cache(torch.tensor([2, 0, 1]))
    assert state.get_seq_length() == 3 and state.index_select(torch.tensor([0, 0])).hidden.shape[0] == 2


# ---- every private transformers name the library uses: listed, still there, still used by transformers ----


def _resolve(dotted: str) -> Any:
    module_name, _, attribute = dotted.rpartition(".")
    try:
        return importlib.import_module(dotted)
    except ImportError:
        return getattr(importlib.import_module(module_name), attribute)


def _defining_source(owner: Any, name: str) -> str:
    """The source of the transformers module that defines `name` on `owner` (or of `owner` itself, a module)."""
    if inspect.ismodule(owner):
        return inspect.getsource(owner)
    definer = next((cls for cls in owner.__mro__ if name in vars(cls)), owner)
    return inspect.getsource(sys.modules[definer.__module__])


PRIVATE_NAMES = [(owner, name) for owner, names in contract.PRIVATE_NAMES.items() for name in names]


@pytest.mark.parametrize(("owner_name", "name"), PRIVATE_NAMES, ids=[name for _, name in PRIVATE_NAMES])
def test_each_private_name_is_still_where_transformers_keeps_it(owner_name: str, name: str) -> None:
    owner = _resolve(owner_name)
    advice = f"transformers {transformers.__version__} changed {owner_name}.{name}"
    if not inspect.ismodule(owner):
        assert hasattr(owner, name), f"{advice}: it is gone"
    # transformers itself still calls or reads it: a line that names it other than where it is defined
    definition = re.compile(rf"^\s*(def\s+)?{re.escape(name)}\b\s*[:=(]")
    uses = [line for line in _defining_source(owner, name).splitlines()
            if re.search(rf"\b{re.escape(name)}\b", line) and not definition.match(line)]
    assert uses, f"{advice}: nothing in its module uses it any more, so what the library does with it does nothing"


#: private names the package uses that are not transformers' (standard library)
NOT_TRANSFORMERS = {"_SubParsersAction"}


def _package_files() -> list[Path]:
    return sorted(Path(hf_encdec.__file__).parent.rglob("*.py"))


def _private_names_used() -> dict[str, set[str]]:
    """Private names the package uses but does not define: attribute reads and getattr/hasattr strings, and the
    private methods and attributes its classes define over a transformers ancestor (name -> files)."""
    defined: set[str] = set()
    used: dict[str, set[str]] = {}
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in _package_files()}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                defined.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
    for path, tree in trees.items():
        where = str(path.relative_to(Path(hf_encdec.__file__).parent))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Attribute):
                names.append(node.attr)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr"):
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                    names.append(node.args[1].value)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("transformers"):
                names.extend(alias.name for alias in node.names)
            for name in names:
                if name.startswith("_") and not name.startswith("__") and name not in defined:
                    used.setdefault(name, set()).add(where)
    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith("hf_encdec"):
            continue
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            ancestors = [base for base in cls.__mro__[1:] if base.__module__.startswith("transformers")]
            source = inspect.getsource(module)
            for name in vars(cls):
                # what the class body itself defines (not what registration or abc set on the class at run time)
                written = re.search(rf"^\s+(def\s+{re.escape(name)}\b|{re.escape(name)}\s*[:=])", source, re.MULTILINE)
                if written and name.startswith("_") and not name.startswith("__") and any(hasattr(a, name) for a in ancestors):
                    used.setdefault(name, set()).add(module.__name__)
    return used


def test_every_private_transformers_name_the_package_uses_is_listed() -> None:
    for path in _package_files():  # every module imported, so that its classes are seen (not the CLI's __main__)
        if path.name == "__main__.py":
            continue
        relative = path.relative_to(Path(hf_encdec.__file__).parent.parent).with_suffix("")
        importlib.import_module(".".join(relative.parts).removesuffix(".__init__"))
    listed = {name for _, name in PRIVATE_NAMES}
    unlisted = {name: sorted(files) for name, files in _private_names_used().items()
                if name not in listed and name not in NOT_TRANSFORMERS}
    assert not unlisted, (
        f"private names used but not listed in models/transformers_contract.py PRIVATE_NAMES: {unlisted}; list each "
        "with the reason no public name does, or use a public one"
    )
    assert set(contract.PRIVATE_OVERRIDES) <= listed
