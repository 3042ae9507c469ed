"""The library's CUDA paths on tiny models of every family, before any GPU timing is trusted.

    python bench/cuda_check.py                       # on the GPU (default: cuda when available)
    python bench/cuda_check.py --device cpu          # the same checks on CPU, seconds (a smoke run of the script)

Three checks, each printed as PASS/FAIL per family; the exit status is 1 if any failed, and a JSON of every result is
written to --out (default: $OUT when set, else bench/results/):

(a) fp32 on the device: `generate()` greedy and beam 4 give identical token ids with and without the cache (the
    Transformer, pointer-generator and RNN seq2seq families, plus the decoder-only one and the Transformer-encoder /
    RNN-decoder hybrid). Padded batches: right padding for seq2seq sources, left padding for the decoder's prompts.
(b) bf16 with attn_implementation="sdpa", dropout on: one forward + backward + AdamW step has a finite loss, finite
    gradients and finite weights afterwards, a second step's loss is finite, and `generate()` (greedy and beam 4; the
    NAT's mask-predict) runs and returns ids inside the vocabulary. Every family of registration.FAMILIES.
(c) fp32 logits of the same weights on the device and on CPU match (max abs diff <= --atol plus --rtol times the
    value), for every family. TF32 is switched off for (a) and (c): they check the code paths, not TF32's rounding.

The models are the registration table's `tiny` configs (registration.FAMILIES), as the tests build them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import hf_encdec  # noqa: E402,F401  (registers the families)
from hf_encdec.registration import FAMILIES, Family  # noqa: E402

transformers.logging.set_verbosity_error()

BATCH, SOURCE_LEN, TARGET_LEN, NEW_TOKENS, BEAMS = 3, 7, 5, 8, 4
PAD, START, EOS, MASK = 0, 1, 2, 4
FAMILY = {family.name: family for family in FAMILIES}
# the Transformer-encoder / RNN-decoder hybrid: the RNN family's only attention kernel that sdpa reaches
HYBRID = "rnn_seq2seq+transformer_encoder"
AUTOREGRESSIVE = ("transformer", "pointer_generator", "rnn_seq2seq", HYBRID, "decoder")
EVERY_MODEL = ("transformer", "pointer_generator", "nat", "encoder", "decoder", "rnn_seq2seq", HYBRID)


def family_of(name: str) -> Family:
    return FAMILY["rnn_seq2seq" if name == HYBRID else name]


def tiny_config(name: str, *, dropout: float) -> dict[str, Any]:
    values = dict(family_of(name).tiny)
    if name in ("rnn_seq2seq", HYBRID):
        values["dropout"] = dropout
        if name == HYBRID:
            values.update(encoder_type="transformer", encoder_config={"num_attention_heads": 4, "intermediate_size": 37})
    else:
        values.update(dropout=dropout, attention_dropout=dropout)
    return values


def build(name: str, *, attn: str, dropout: float = 0.0, seed: int = 0) -> torch.nn.Module:
    family = family_of(name)
    config = family.config_class(**tiny_config(name, dropout=dropout))
    torch.manual_seed(seed)
    return family.main_class._from_config(config, attn_implementation=attn).eval()


def vocab_of(model: torch.nn.Module) -> int:
    return model.config.vocab_size


def inputs(name: str, vocab: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """A padded batch for `name`'s forward without labels: seq2seq sources padded on the right (row 2 has 5 real
    tokens), the decoder's prompts on the left (row 2 starts after 2 pads), the encoder's input with masked positions."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (BATCH, SOURCE_LEN), generator=generator)
    mask = torch.ones_like(ids)
    if name == "decoder":
        mask[2, :2] = 0
    else:
        mask[2, 5:] = 0
    ids = ids.masked_fill(mask == 0, PAD)
    batch = {"input_ids": ids, "attention_mask": mask}
    if name == "encoder":
        batch["input_ids"] = ids.clone()
        batch["input_ids"][:, 1] = MASK
        batch["input_ids"][0, 3] = MASK
    elif name == "nat":
        batch["decoder_input_ids"] = torch.full((BATCH, TARGET_LEN + 1), MASK)
    elif name != "decoder":
        batch["decoder_input_ids"] = torch.cat(
            [torch.full((BATCH, 1), START), torch.randint(5, vocab, (BATCH, TARGET_LEN - 1), generator=generator)], dim=1
        )
    return batch


def training_batch(name: str, vocab: int, seed: int = 2) -> dict[str, torch.Tensor]:
    """A padded batch with labels (-100 on positions without a loss)."""
    generator = torch.Generator().manual_seed(seed)
    batch = inputs(name, vocab, seed)
    if name == "encoder":
        labels = torch.full_like(batch["input_ids"], -100)
        masked = batch["input_ids"] == MASK
        original = torch.randint(5, vocab, batch["input_ids"].shape, generator=generator)
        labels[masked] = original[masked]
        batch["labels"] = labels
    elif name == "decoder":
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    else:
        batch.pop("decoder_input_ids", None)
        labels = torch.randint(5, vocab, (BATCH, TARGET_LEN + 1), generator=generator)
        labels[0, -1], labels[1, 3], labels[2, 1] = EOS, EOS, EOS
        labels[1, 4:], labels[2, 2:] = -100, -100
        batch["labels"] = labels
    return batch


def to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def generation_inputs(name: str, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    batch = inputs(name, vocab)
    return to({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}, device)


# ----------------------------------------------------------------------------------------------------------- checks
def check_cache(name: str, device: torch.device) -> list[dict[str, Any]]:
    """(a): the same ids with and without the cache, greedy and beam, fp32."""
    model = build(name, attn="sdpa").to(device)
    source = generation_inputs(name, vocab_of(model), device)
    results = []
    for mode, kwargs in (("greedy", {"num_beams": 1}), (f"beam{BEAMS}", {"num_beams": BEAMS})):
        common = dict(max_new_tokens=NEW_TOKENS, do_sample=False, return_dict_in_generate=True, output_scores=True, **kwargs)
        with_cache = model.generate(**source, use_cache=True, **common)
        without = model.generate(**source, use_cache=False, **common)
        same = with_cache.sequences.shape == without.sequences.shape and torch.equal(with_cache.sequences, without.sequences)
        detail: dict[str, Any] = {"shape": list(with_cache.sequences.shape)}
        if with_cache.scores and without.scores and len(with_cache.scores) == len(without.scores):
            detail["max_score_diff"] = max(
                float((a.float() - b.float()).masked_fill(~(a.isfinite() & b.isfinite()), 0).abs().max())
                for a, b in zip(with_cache.scores, without.scores)
            )
        if not same:
            detail["with_cache"] = with_cache.sequences.tolist()
            detail["without_cache"] = without.sequences.tolist()
        results.append({"check": "a_cache", "family": name, "mode": mode, "passed": bool(same), **detail})
    return results


def finite(tensors) -> tuple[bool, int]:
    count, ok = 0, True
    for tensor in tensors:
        if tensor is None:
            continue
        count += 1
        ok = ok and bool(torch.isfinite(tensor).all())
    return ok, count


def check_bf16(name: str, device: torch.device) -> list[dict[str, Any]]:
    """(b): bf16 + sdpa, a training step with dropout, then generate()."""
    model = build(name, attn="sdpa", dropout=0.1).to(device=device, dtype=torch.bfloat16).train()
    vocab = vocab_of(model)
    attn = getattr(model.config, "_attn_implementation", None)
    batch = to(training_batch(name, vocab), device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    optimizer.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss_ok = loss is not None and bool(torch.isfinite(loss))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    grads_ok, with_grad = finite(grads)
    grad_norm = float(torch.norm(torch.stack([g.float().norm() for g in grads if g is not None])))
    optimizer.step()
    weights_ok, _ = finite(p for p in model.parameters())
    optimizer.zero_grad(set_to_none=True)
    second = model(**batch).loss
    second_ok = bool(torch.isfinite(second))
    train = {
        "check": "b_bf16_train",
        "family": name,
        "mode": f"attn={attn}",
        "passed": bool(loss_ok and grads_ok and weights_ok and second_ok and with_grad > 0 and grad_norm > 0),
        "loss": float(loss.detach()),
        "loss_after_step": float(second.detach()),
        "grad_norm": grad_norm,
        "parameters_with_grad": with_grad,
        "parameters": len(grads),
        "finite": {"loss": loss_ok, "grads": grads_ok, "weights": weights_ok, "second_loss": second_ok},
        "dtype": str(next(model.parameters()).dtype),
    }
    results = [train]
    if name == "encoder":
        return results
    model.eval()
    source = generation_inputs(name, vocab, device)
    modes = (("mask-predict", {}),) if name == "nat" else (("greedy", {"num_beams": 1}), (f"beam{BEAMS}", {"num_beams": BEAMS}))
    for mode, kwargs in modes:
        if name == "nat":
            out = model.generate(**source, max_new_tokens=NEW_TOKENS, num_iterations=4)
        else:
            out = model.generate(**source, max_new_tokens=NEW_TOKENS, do_sample=False, **kwargs)
        in_range = bool(((out >= 0) & (out < vocab)).all())
        results.append(
            {
                "check": "b_bf16_generate",
                "family": name,
                "mode": mode,
                "passed": in_range and out.shape[0] == BATCH and out.shape[1] > 1,
                "shape": list(out.shape),
                "first_row": out[0].tolist(),
            }
        )
    return results


def check_against_cpu(name: str, device: torch.device, atol: float, rtol: float) -> list[dict[str, Any]]:
    """(c): the same weights and inputs, fp32 logits on CPU and on the device."""
    model = build(name, attn="sdpa")
    batch = inputs(name, vocab_of(model))
    with torch.no_grad():
        cpu = model(**batch).logits.float()
        moved = model.to(device)
        gpu = moved(**to(batch, device)).logits.float().cpu()
    both = cpu.isfinite() & gpu.isfinite()
    same_pattern = torch.equal(cpu.isfinite(), gpu.isfinite())
    diff = (cpu - gpu).masked_fill(~both, 0).abs()
    bound = atol + rtol * cpu.masked_fill(~both, 0).abs()
    max_diff = float(diff.max())
    return [
        {
            "check": "c_device_vs_cpu",
            "family": name,
            "mode": "fp32 logits",
            "passed": bool(same_pattern and bool((diff <= bound).all())),
            "max_abs_diff": max_diff,
            "max_abs_logit": float(cpu.masked_fill(~both, 0).abs().max()),
            "shape": list(cpu.shape),
            "same_nonfinite_positions": bool(same_pattern),
        }
    ]


def run_check(label: str, name: str, function: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    start = time.perf_counter()
    try:
        results = function()
    except Exception as error:  # a crash is a failure of that check, the others still run
        results = [
            {
                "check": label,
                "family": name,
                "mode": "-",
                "passed": False,
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=-6),
            }
        ]
    seconds = time.perf_counter() - start
    for result in results:
        result["seconds"] = round(seconds, 3)
        extra = {k: result[k] for k in ("max_abs_diff", "max_score_diff", "loss", "grad_norm", "shape", "error") if k in result}
        print(f"{'PASS' if result['passed'] else 'FAIL'}  {result['check']:17s} {name:33s} {result['mode']:14s} {extra}", flush=True)
        if "traceback" in result:
            print(result["traceback"], flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--atol", type=float, default=1e-4, help="(c): absolute tolerance on logits")
    parser.add_argument("--rtol", type=float, default=1e-4, help="(c): relative tolerance on logits")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results"))
    parser.add_argument("--name", default=None, help="JSON file name (default: cuda-check-<device>)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.init()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    print(f"device {device} ({info['gpu'] or platform.processor() or platform.machine()}); torch {info['torch']}, "
          f"transformers {info['transformers']}, python {info['python']}", flush=True)

    results: list[dict[str, Any]] = []
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for name in AUTOREGRESSIVE:
            results += run_check("a_cache", name, lambda name=name: check_cache(name, device))
        for name in EVERY_MODEL:
            results += run_check("c_device_vs_cpu", name, lambda name=name: check_against_cpu(name, device, args.atol, args.rtol))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    for name in EVERY_MODEL:
        results += run_check("b_bf16", name, lambda name=name: check_bf16(name, device))

    failed = [r for r in results if not r["passed"]]
    summary = {
        check: {"passed": sum(r["passed"] for r in results if r["check"].startswith(check)),
                "total": sum(r["check"].startswith(check) for r in results)}
        for check in ("a", "b", "c")
    }
    print("\n" + "; ".join(f"({c}) {s['passed']}/{s['total']} passed" for c, s in summary.items()))
    print("ALL PASS" if not failed else f"FAILED: {len(failed)} of {len(results)}", flush=True)
    report = {
        "name": args.name or f"cuda-check-{device.type}",
        "command": "python bench/cuda_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "passed": not failed,
        "summary": summary,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{report['name']}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
