"""Checkpoint averaging: the parameters of the last checkpoints of a run, averaged into one model.

Vaswani et al. (2017) averaged the last 5 (base) or 20 (big) checkpoints of a run; fairseq's
``average_checkpoints.py`` and Marian's ``--average`` do the same. The average of weights taken a few hundred steps
apart sits nearer the middle of the basin the optimiser circles in late training, which usually scores a little
better than any one of them, at no training cost.

>>> import tempfile, torch
>>> from hf_encdec import TransformerConfig, TransformerForConditionalGeneration
>>> config = TransformerConfig(vocab_size=31, d_model=16, encoder_layers=1, decoder_layers=1,
...                            encoder_attention_heads=2, decoder_attention_heads=2,
...                            encoder_ffn_dim=24, decoder_ffn_dim=24, max_position_embeddings=32)
>>> folders = []
>>> for seed in (0, 1):
...     _ = torch.manual_seed(seed)
...     folders.append(tempfile.mkdtemp())
...     TransformerForConditionalGeneration(config).save_pretrained(folders[-1])
>>> averaged = average_checkpoints(folders)
>>> first, second = (TransformerForConditionalGeneration.from_pretrained(f) for f in folders)
>>> name = "model.encoder.layers.0.feed_forward.fc1.weight"
>>> torch.allclose(averaged.state_dict()[name], (first.state_dict()[name] + second.state_dict()[name]) / 2)
True
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, PreTrainedModel

from ..models.transformers_contract import no_hub_kernels

logger = logging.getLogger(__name__)

# Config fields that differ between checkpoints of one run without changing the architecture.
# A run resumed across versions has checkpoints with and without `tokenizer_fingerprint`: compared on its own.
_RUN_FIELDS = {
    "_name_or_path", "transformers_version", "training_data", "dtype", "torch_dtype", "tokenizer_fingerprint",
}


def run_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint folders of a run (``checkpoint-<step>``, in ``RUN/checkpoints/`` or ``RUN/`` itself), oldest
    first by step. Raises ``FileNotFoundError`` naming the folder when it holds none."""
    run = Path(run_dir)
    found = [
        path
        for parent in (run / "checkpoints", run)
        if parent.is_dir()
        for path in parent.iterdir()
        if path.is_dir() and re.fullmatch(r"checkpoint-\d+", path.name)
    ]
    if not found:
        raise FileNotFoundError(
            f"{run} holds no checkpoint-<step> folders (looked in {run / 'checkpoints'} and {run}); a training run "
            "keeps its last `save_total_limit` checkpoints there"
        )
    return sorted(found, key=lambda path: int(path.name.split("-")[1]))


def _architecture(folder: Path) -> dict[str, object]:
    config = AutoConfig.from_pretrained(folder).to_dict()
    return {key: value for key, value in config.items() if key not in _RUN_FIELDS}


def average_checkpoints(folders: Sequence[str | os.PathLike[str]]) -> PreTrainedModel:
    """One model whose parameters and floating-point buffers are the mean of those saved in `folders`.

    Every folder must hold the same architecture (its ``config.json`` equal but for run bookkeeping such as
    ``transformers_version``); a difference raises ``ValueError`` naming the folders and fields. Integer buffers
    (position ids, step counters) must be equal in all of them. The sum is kept in float64 and the mean cast back to
    each tensor's dtype. Models are loaded one at a time, so memory holds two models, not ``len(folders)``. Returns
    the first folder's model (config, generation config) with the averaged weights, in eval mode; tied weights stay
    tied.
    """
    paths = [Path(folder) for folder in folders]
    if not paths:
        raise ValueError("average_checkpoints() needs at least one checkpoint folder, got none")
    reference = _architecture(paths[0])
    fingerprints = {
        str(path): fingerprint
        for path in paths
        if (fingerprint := getattr(AutoConfig.from_pretrained(path), "tokenizer_fingerprint", None)) is not None
    }
    if len(set(fingerprints.values())) > 1:
        raise ValueError(
            f"cannot average checkpoints trained with different tokenizers (tokenizer_fingerprint {fingerprints}); "
            "average checkpoints of one run only"
        )
    for path in paths[1:]:
        other = _architecture(path)
        differing = sorted(key for key in set(reference) | set(other) if reference.get(key) != other.get(key))
        if differing:
            raise ValueError(
                f"cannot average {paths[0]} and {path}: their configs differ in {', '.join(differing)}; average "
                "checkpoints of one run (one architecture) only"
            )
    model = AutoModelForSeq2SeqLM.from_pretrained(paths[0], **no_hub_kernels())
    if fingerprints:  # the oldest checkpoint of a run resumed across versions may lack it
        model.config.tokenizer_fingerprint = next(iter(fingerprints.values()))
    state = model.state_dict()
    sums = {name: tensor.double().clone() for name, tensor in state.items() if tensor.is_floating_point()}
    for path in paths[1:]:
        other = AutoModelForSeq2SeqLM.from_pretrained(path, **no_hub_kernels()).state_dict()
        for name, tensor in other.items():
            if name in sums:
                sums[name] += tensor.double()
            elif not torch.equal(tensor, state[name]):
                raise ValueError(
                    f"cannot average {paths[0]} and {path}: the integer buffer {name} differs between them"
                )
    averaged = {name: (total / len(paths)).to(state[name].dtype) for name, total in sums.items()}
    model.load_state_dict(averaged, strict=False)
    logger.info("averaged %d checkpoints: %s", len(paths), ", ".join(path.name for path in paths))
    return model.eval()
