"""Our encoder and decoder compute exactly what transformers' BERT, GPT-2 and Llama compute, given the same weights.

The README's side-by-side table trains each pair from scratch with the same script, data and steps. A gap between the
two columns can then come from the blocks (a bug), from the initial weights, or from the random draws (initial weights,
dropout masks). These tests pin the first two: with a stock model's weights copied into ours, the logits, the loss and
every gradient agree; the initial weights are drawn with the same spread; and with dropout off, the real Trainer takes
the two models along the same path, step by step.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
)

from hf_encdec import DecoderConfig, DecoderForCausalLM, EncoderConfig, EncoderForMaskedLM

VOCAB = 96
SIZE = {"vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 24}
LARGER = {**SIZE, "hidden_size": 128, "intermediate_size": 256}  # for the spread of the initial weights
NO_DROPOUT = {"dropout": 0.0, "attention_dropout": 0.0}


def bert_pair(size: dict, **ours: object) -> tuple[BertForMaskedLM, EncoderForMaskedLM, dict[str, str]]:
    dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0} if ours == NO_DROPOUT else {}
    theirs = BertForMaskedLM(BertConfig(**size, **dropout))
    names = {"bert.embeddings.word_embeddings": "model.encoder.embed_tokens",
             "bert.embeddings.position_embeddings": "model.encoder.embed_positions",
             "bert.embeddings.token_type_embeddings": "model.encoder.token_type_embeddings",
             "bert.embeddings.LayerNorm": "model.encoder.embedding_norm", "bert.encoder.layer.": "model.encoder.layers.",
             "attention.self.query": "self_attn.q_proj", "attention.self.key": "self_attn.k_proj",
             "attention.self.value": "self_attn.v_proj", "attention.output.dense": "self_attn.o_proj",
             "attention.output.LayerNorm": "self_attn_norm", "intermediate.dense": "feed_forward.fc1",
             "output.dense": "feed_forward.fc2", "output.LayerNorm": "feed_forward_norm",
             "cls.predictions.transform.dense": "lm_head.dense", "cls.predictions.transform.LayerNorm": "lm_head.norm",
             "cls.predictions.decoder": "lm_head.decoder", "cls.predictions.bias": "lm_head.decoder.bias"}
    return theirs, EncoderForMaskedLM(EncoderConfig(**size, **ours)), names


def gpt2_pair(size: dict, **ours: object) -> tuple[GPT2LMHeadModel, DecoderForCausalLM, dict[str, str]]:
    theirs = GPT2LMHeadModel(GPT2Config(
        vocab_size=size["vocab_size"], n_embd=size["hidden_size"], n_layer=size["num_hidden_layers"],
        n_head=size["num_attention_heads"], n_inner=size["intermediate_size"],
        n_positions=size["max_position_embeddings"], bos_token_id=1, eos_token_id=2,
    ))
    names = {"transformer.wte": "model.decoder.embed_tokens", "transformer.wpe": "model.decoder.embed_positions",
             "transformer.ln_f": "model.decoder.final_norm", "transformer.h.": "model.decoder.layers.",
             "ln_1": "self_attn_norm", "ln_2": "feed_forward_norm", "attn.c_proj": "self_attn.o_proj",
             "mlp.c_fc": "feed_forward.fc1", "mlp.c_proj": "feed_forward.fc2"}
    return theirs, DecoderForCausalLM(DecoderConfig(**size, hidden_act="gelu_new", **ours)), names


def llama_pair(size: dict, **ours: object) -> tuple[LlamaForCausalLM, DecoderForCausalLM, dict[str, str]]:
    size = {**size, "num_key_value_heads": 2}  # grouped-query attention; Llama has no dropout to switch off
    theirs = LlamaForCausalLM(LlamaConfig(**size, bos_token_id=1, eos_token_id=2))
    # the stock LlamaConfig's RoPE theta and epsilon (Llama 2); DecoderConfig.llama_kwargs() are Llama 3's
    config = DecoderConfig(**{**DecoderConfig.llama_kwargs(), **size, "rope_theta": 10000.0, "layer_norm_eps": 1e-6})
    names = {"model.embed_tokens": "model.decoder.embed_tokens", "model.norm": "model.decoder.final_norm",
             "model.layers.": "model.decoder.layers.", "input_layernorm": "self_attn_norm",
             "post_attention_layernorm": "feed_forward_norm", "mlp.": "feed_forward."}
    return theirs, DecoderForCausalLM(config), names


def rename(name: str, names: dict[str, str]) -> str:
    for old, new in names.items():
        name = name.replace(old, new)
    return name


def their_tensors_as_ours(theirs: torch.nn.Module, names: dict[str, str]) -> dict[str, torch.Tensor]:
    """Their parameters (or gradients, as `.grad` is read when present) under our names. GPT-2's Conv1D stores
    (in, out) and packs q, k, v into one c_attn; ours are nn.Linear (out, in) and three projections."""
    out = {}
    for name, parameter in theirs.named_parameters(remove_duplicate=False):  # tied weights under both names
        value = parameter.grad if parameter.grad is not None else parameter.detach()
        if "c_attn" in name or "c_proj" in name or "c_fc" in name:
            value = value.t() if value.dim() == 2 else value
        if "c_attn" in name:
            prefix, kind = rename(name.split("attn.c_attn")[0], names), name.rsplit(".", 1)[1]
            for projection, part in zip("qkv", value.chunk(3, dim=0)):
                out[f"{prefix}self_attn.{projection}_proj.{kind}"] = part.contiguous()
            continue
        out[rename(name, names)] = value.contiguous()
    return out


PAIRS = {"bert": bert_pair, "gpt2": gpt2_pair, "llama": llama_pair}


def batch(causal: bool) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (3, 20), generator=generator)
    if causal:
        return {"input_ids": ids, "labels": ids}
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, ::3] = ids[:, ::3]
    labels[mask == 0] = -100  # a padded position's output is not defined to match (each model fills it its own way)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_the_same_weights_give_the_same_logits_loss_and_gradients(pair: str) -> None:
    torch.manual_seed(0)
    theirs, ours, names = PAIRS[pair](SIZE)
    ours.load_state_dict(their_tensors_as_ours(theirs, names), strict=True)
    theirs.eval(), ours.eval()
    inputs = batch(causal=pair != "bert")
    their_out, our_out = theirs(**inputs), ours(**inputs)
    real = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"])).bool()
    torch.testing.assert_close(our_out.logits[real], their_out.logits[real], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(our_out.loss, their_out.loss, atol=1e-5, rtol=1e-5)
    their_out.loss.backward()
    our_out.loss.backward()
    their_grads = their_tensors_as_ours(theirs, names)
    for name, parameter in ours.named_parameters():
        torch.testing.assert_close(parameter.grad, their_grads[name], atol=1e-6, rtol=1e-4, msg=name)


@pytest.mark.parametrize("pair", sorted(PAIRS))
def test_initial_weights_have_their_spread(pair: str) -> None:
    """Each of our parameters is drawn like its counterpart: zero biases, unit norms, std 0.02 (GPT-2's residual
    projections 0.02/sqrt(2 layers)), at a size where the sample std is close to the true one."""
    torch.manual_seed(0)
    theirs, ours, names = PAIRS[pair](LARGER)
    their_weights = their_tensors_as_ours(theirs, names)
    for name, parameter in ours.named_parameters():
        mine, other = parameter.detach(), their_weights[name]
        assert mine.mean().item() == pytest.approx(other.mean().item(), abs=2e-3), name
        # two sample stds of n draws differ by about std/sqrt(n); 4 of that, so a wrong init (x2, /sqrt(2L)) fails
        assert mine.std().item() == pytest.approx(other.std().item(), rel=4 / mine.numel() ** 0.5, abs=1e-6), name


def train_losses(model: torch.nn.Module, dataset: Dataset, folder: str) -> list[float]:
    args = TrainingArguments(output_dir=folder, max_steps=12, per_device_train_batch_size=8, learning_rate=3e-3,
                             warmup_steps=2, logging_steps=3, report_to="none", save_strategy="no", seed=0,
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.parametrize("pair", ["bert", "llama"])
def test_the_trainer_takes_both_along_the_same_path(pair: str, tmp_path) -> None:
    """Same start, no dropout: the real Trainer (AdamW, warm-up, clipping, loss normalisation) trains both the same.
    (GPT-2 is left out: the Trainer counts its labels without the causal shift, as its loss_type is unset, so its
    reported training loss is (T-1)/T of ours. Eval losses are unaffected.)"""
    torch.manual_seed(0)
    theirs, ours, names = PAIRS[pair](SIZE, **NO_DROPOUT) if pair == "bert" else PAIRS[pair](SIZE)
    ours.load_state_dict(their_tensors_as_ours(theirs, names), strict=True)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, VOCAB, (96, 20), generator=generator)
    ids[:, 1::2] = (ids[:, ::2] * 7) % VOCAB  # something to learn
    labels = ids.clone()
    if pair == "bert":
        labels[:, 1::2] = -100
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels.tolist()})
    their_losses = train_losses(theirs, dataset, str(tmp_path / "theirs"))
    our_losses = train_losses(ours, dataset, str(tmp_path / "ours"))
    assert len(our_losses) == 4
    assert their_losses[-1] < their_losses[0] - 0.1  # it learned, so the path is not trivially flat
    assert our_losses == pytest.approx(their_losses, abs=2e-3)
