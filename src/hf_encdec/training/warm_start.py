"""Warm start: a new model takes every weight of a trained run whose name and shape it shares (`hf-encdec train
--init-from RUN`): the embeddings, the encoder and as many decoder layers as the shapes allow. A NAT started from
its autoregressive teacher of the same size begins with a trained encoder and a decoder that already translates one
token at a time; what the run has and the other lacks (a length classifier, a copy mechanism) starts fresh.

>>> from hf_encdec.training.warm_start import warm_start    # doctest: +SKIP
>>> warm_start(nat_model, "runs/gettext-de", tokenizer)       # doctest: +SKIP
{'copied': 76, 'fresh': ['length_head.bias', 'length_head.weight'], 'unused': ['copy_mechanism.gate.bias', ...]}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"


class WarmStartError(ValueError):
    """The run to start from cannot initialise this model (missing weights, another tokenizer, no shared weight)."""


def _run_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    for candidate in (folder, folder / "tokenizer"):
        if (candidate / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(candidate)
    raise WarmStartError(f"{folder} holds no tokenizer (tokenizer.json); start from a run folder of hf-encdec train")


def warm_start(model: PreTrainedModel, run: str | Path, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Copy into `model` every tensor of the run folder `run` (its model.safetensors) with the same name and shape,
    and return what happened: {"copied": count, "fresh": names left as initialised, "unused": names of the run not
    taken}. Tied weights are copied once and stay tied.

    Raises:
        WarmStartError: `run` has no weights or no tokenizer, its tokenizer differs from `tokenizer` (the token ids
            would mean other pieces), or no tensor fits.
    """
    folder = Path(run)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise WarmStartError(f"{weights} does not exist; --init-from takes a finished run folder (model.safetensors)")
    theirs = _run_tokenizer(folder)
    if theirs.get_vocab() != tokenizer.get_vocab():
        raise WarmStartError(
            f"{folder} was trained with another tokenizer ({len(theirs)} tokens) than this run's ({len(tokenizer)} "
            "tokens), so its embeddings belong to other pieces: train on a corpus that carries its tokenizer (a "
            f"corpus made by `hf-encdec distill {folder}`), or start without --init-from"
        )
    source = load_file(str(weights))
    own = model.state_dict()
    taken = {name: tensor for name, tensor in source.items() if name in own and own[name].shape == tensor.shape}
    if not taken:
        raise WarmStartError(f"no weight of {folder} has a name and shape of this {type(model).__name__}")
    with torch.no_grad():
        for name, tensor in taken.items():
            own[name].copy_(tensor.to(own[name].dtype))
    shared = {own[name].data_ptr() for name in taken}  # a tied weight is taken with the one it is tied to
    report = {
        "copied": len(taken),
        "fresh": sorted(name for name in own if name not in taken and own[name].data_ptr() not in shared),
        "unused": sorted(set(source) - set(taken)),
    }
    logger.info("initialised %d of %d tensors from %s; left fresh: %s; not used: %s", len(taken), len(own), folder,
                ", ".join(report["fresh"]) or "none", ", ".join(report["unused"]) or "none")
    return report
