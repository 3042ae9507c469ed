"""Same-run cost of the pointer-generator's copy loss, unfused (today's forward: (N, V) logits kept for backward, then
`copy_cross_entropy`) against fused (`linear_copy_cross_entropy`: the output layer and the loss chunk by chunk), next
to the plain Transformer's fused loss, at the `pointer-generator-small` / `transformer-small` size (d256, 4 heads, ffn
1024, 3+3 layers) with vocabulary 8000, label smoothing 0.1, on BATCH sentences x LENGTH tokens (source and target).

Training steps (forward + backward, model.train(), dropout 0.1, no optimizer step):
  pg model      PointerGeneratorForConditionalGeneration(labels=...) with the speed paths (hf_encdec.speed)
  pg plain      the plain model: the (B, T, V) logits, the mixture P and its cross-entropy
  pg unfused    the same forward's pieces, loss block written out with copy_cross_entropy (checks the wrapper)
  pg fused      the same pieces with linear_copy_cross_entropy
  transformer   TransformerForConditionalGeneration(labels=...) (config.fused_loss=True)
Loss block alone (copy head + output layer + loss, forward + backward, on the pointer-generator's real decoder states):
  unfused / fused, and the plain fused cross-entropy of the same states for reference.

    python bench/experiments/copy_loss_fusion.py 32 32 9 2      # BATCH LENGTH REPS THREADS
"""
import copy
import statistics
import sys
import time

import torch

from hf_encdec import (
    PointerGeneratorConfig,
    PointerGeneratorForConditionalGeneration,
    TransformerConfig,
    TransformerForConditionalGeneration,
)
from hf_encdec.speed import apply_speed_paths
from hf_encdec.speed.copy_losses import copy_cross_entropy, linear_copy_cross_entropy
from hf_encdec.speed.losses import linear_cross_entropy
from hf_encdec.registration import SMALL

batch, length, reps = (int(a) for a in sys.argv[1:4]) if len(sys.argv) > 3 else (32, 32, 9)
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)
VOCAB, SMOOTHING = 8000, 0.1
settings = {**SMALL, "vocab_size": VOCAB, "label_smoothing": SMOOTHING, "dropout": 0.1}
torch.manual_seed(0)
pg_plain = PointerGeneratorForConditionalGeneration(PointerGeneratorConfig(**settings)).train()
pg = apply_speed_paths(copy.deepcopy(pg_plain))
torch.manual_seed(0)
transformer = apply_speed_paths(TransformerForConditionalGeneration(TransformerConfig(**settings)).train())
generator = torch.Generator().manual_seed(0)
source = torch.randint(5, VOCAB, (batch, length), generator=generator)
labels = torch.randint(5, VOCAB, (batch, length), generator=generator)
labels[:, :3] = source[:, 5:8]  # some target words are in the source: the copy part matters
mask = torch.ones_like(source)


def pieces(model):
    """What the pointer-generator's forward computes before its loss: decoder states (B, T, D) and the copy head."""
    outputs = model.model(input_ids=source, attention_mask=mask,
                          decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels), use_cache=False)
    states = outputs.last_hidden_state
    return states, model.copy_mechanism(states, outputs.encoder_last_hidden_state, mask)


def loss_block(model, states, copy, fused):
    keep = labels != -100
    head = model.lm_head
    arguments = (copy.attention, copy.gate_logits, source, labels)
    kwargs = {"encoder_attention_mask": mask, "label_smoothing": SMOOTHING}
    if fused:
        return linear_copy_cross_entropy(states[keep], head.weight, head.bias, *arguments, **kwargs)
    return copy_cross_entropy(head(states[keep]), *arguments, **kwargs)


def wrapped(fused):
    return lambda: loss_block(pg, *pieces(pg), fused)


def step(loss_fn, model):
    def run():
        model.zero_grad(set_to_none=True)
        loss_fn().backward()
    return run


# the wrapper computes the model's loss, fused or not (eval: no dropout)
with torch.no_grad():
    pg.eval()
    reference = pg(input_ids=source, attention_mask=mask, labels=labels).loss
    for fused in (False, True):
        torch.testing.assert_close(wrapped(fused)(), reference, atol=1e-5, rtol=1e-5)
    pg.train()

states = pieces(pg)[0].detach()
encoder_states = pg.model.get_encoder()(input_ids=source, attention_mask=mask).last_hidden_state.detach()


def block(kind):
    def run():
        pg.zero_grad(set_to_none=True)
        hidden = states.clone().requires_grad_()
        if kind == "plain":
            loss = linear_cross_entropy(hidden, pg.lm_head.weight, labels, bias=pg.lm_head.bias,
                                        label_smoothing=SMOOTHING)
        else:
            loss = loss_block(pg, hidden, pg.copy_mechanism(hidden, encoder_states, mask), kind == "fused")
        loss.backward()
    return run


groups = {
    "training step": {
        "pg model": step(lambda: pg(input_ids=source, attention_mask=mask, labels=labels).loss, pg),
        "pg plain": step(lambda: pg_plain(input_ids=source, attention_mask=mask, labels=labels).loss, pg_plain),
        "pg unfused": step(wrapped(False), pg),
        "pg fused": step(wrapped(True), pg),
        "transformer": step(lambda: transformer(input_ids=source, attention_mask=mask, labels=labels).loss,
                            transformer),
    },
    "loss block": {"unfused": block("unfused"), "fused": block("fused"), "plain fused CE": block("plain")},
}
print(f"batch {batch} x {length} tokens, vocab {VOCAB}, d {SMALL['hidden_size']}, threads {torch.get_num_threads()},"
      f" {reps} alternating repetitions, medians", flush=True)
for group, calls in groups.items():
    times = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm-up
    for r in range(reps):
        for name in (list(calls) if r % 2 == 0 else list(calls)[::-1]):
            started = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - started)
    med = {name: statistics.median(values) for name, values in times.items()}
    first = next(iter(med))
    print(f"{group}: " + ", ".join(f"{name} {med[name] * 1e3:.0f} ms ({med[name] / med[first]:.2f})" for name in med),
          flush=True)
    if group == "training step":
        ratios = [("pg fused", "transformer"), ("pg model", "transformer"), ("pg fused", "pg model"),
                  ("pg plain", "pg model")]
        print("  " + ", ".join(f"{a} / {b} {med[a] / med[b]:.3f}" for a, b in ratios), flush=True)
