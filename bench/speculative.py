"""Speculative decoding against plain greedy decoding, batch 1, same process, interleaved: sentences/s, wall time,
tokens accepted per verification step, and whether every output is identical (it must be).

    python bench/speculative.py RUN_DIR [--every 32] [--draft source] [--draft [lookup:]DRAFTER_RUN] [--oracle NAT_RUN] [--marian]
                                [--out FILE.json]

RUN_DIR is a trained autoregressive run folder (or checkpoint folder with its tokenizer); the sentences are every
N-th pair of the `gettext:de` test split. Each sentence is translated by every system in turn, in an order that
alternates sentence by sentence, so that a slow stretch of the machine hits all systems alike.

`--marian` adds transformers' `MarianMTModel` of the run's shapes (bench/pairs.py's matched config: hidden size, heads,
feed-forward width, layers, vocabulary; random weights, SDPA), decoding greedily with each sentence's output length
forced to the length of the run's greedy output (it runs after the others on each sentence, which gives that length):
the same number of decoder steps, so `vs_marian` compares speed at equal work.

`--oracle` adds the ceiling of any drafter in this loop: a `HypothesisLookupDrafter` whose "translation" is the run's
own greedy output of the sentence (taken before, untimed), so that every draft is right; what is left is the cost of
transformers' verification loop. A second oracle row also runs NAT_RUN's translation of the sentence first and throws
it away: the ceiling of a drafter that drafts from that NAT's one pass and agrees with the target on every token.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
from transformers.modeling_outputs import BaseModelOutput

from hf_encdec.data import load_corpus
from hf_encdec.inference import load_drafter, load_translator
from hf_encdec.models.speculative import HypothesisLookupDrafter
from pairs import Size, build_marian


def marian_like(config: object) -> torch.nn.Module:
    """transformers' Marian with the shapes of `config` (an hf_encdec Transformer or pointer-generator config)."""
    if config.encoder_layers != config.decoder_layers:
        raise SystemExit(f"--marian needs as many encoder as decoder layers ({config.encoder_layers} and "
                         f"{config.decoder_layers}): bench/pairs.py's Marian has one layer count")
    size = Size(name="run", hidden=config.hidden_size, heads=config.num_attention_heads, ffn=config.intermediate_size,
                seq2seq_layers=config.encoder_layers, stack_layers=0, vocab=config.vocab_size,
                max_positions=config.max_position_embeddings, seq2seq_batch=0, seq2seq_length=0, stack_batch=0,
                stack_length=0, generate_batch=1, new_tokens=0, beams=1, growth_tokens=0)
    torch.manual_seed(0)
    return build_marian(size).eval()


class GreedyOutput(torch.nn.Module):
    """The oracle drafter's "encoder": the target's greedy output of the current sentence, set before each call."""

    main_input_name = "input_ids"

    def __init__(self, nat: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.ids: torch.Tensor | None = None
        self.nat = nat  # when given, its translation is made (the cost of drafting from it) and thrown away

    def forward(self, input_ids: torch.Tensor | None = None, **kwargs: object) -> BaseModelOutput:
        if self.nat is not None:
            self.nat.generate(input_ids, attention_mask=kwargs.get("attention_mask"))
        return BaseModelOutput(last_hidden_state=self.ids[:, 1:, None])


def oracle_drafter(model: torch.nn.Module, nat: torch.nn.Module | None) -> HypothesisLookupDrafter:
    """A hypothesis drafter over the target's own greedy output. Its encoder is replaced: `nat`, when given, is run
    for its cost only, so it may come from another tokenizer (the drafter is built without `for_target`'s check)."""
    drafter = HypothesisLookupDrafter(HypothesisLookupDrafter.lookup_config(model, 3), nat=torch.nn.Identity())
    drafter.encoder = GreedyOutput(nat)
    return drafter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--data", default="gettext:de")
    parser.add_argument("--every", type=int, default=32)
    parser.add_argument("--draft", action="append", default=[], help="'source' or a NAT drafter run (repeatable)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--num-assistant-tokens", type=int, action="append", default=[],
                        help="the most tokens a draft proposes (repeatable: one system per value for each drafter; "
                             "default: the drafter's own, 10 for the lookup drafters)")
    parser.add_argument("--marian", action="store_true", help="add transformers' Marian of the same shapes")
    parser.add_argument("--oracle", metavar="NAT_RUN",
                        help="add two ceilings: drafts from the run's own greedy output, free and after NAT_RUN's "
                             "translation of the sentence (NAT_RUN: a NAT run of the run's vocabulary size; only its cost "
                             "counts)")
    parser.add_argument("--oracle-tokens", type=int, default=10,
                        help="the most tokens an oracle draft proposes (default 10, the lookup drafters' own)")
    parser.add_argument("--unmatched-tokens", type=int, action="append", default=[],
                        help="the tokens a lookup drafter proposes where no n-gram matches (repeatable: one system "
                             "per value for each lookup drafter; default: the drafter's own, 1 for source lookup "
                             "and the full draft for a NAT's translation)")
    parser.add_argument("--out")
    args = parser.parse_args()
    model, tokenizer = load_translator(args.run)
    test = load_corpus(args.data)["test"]
    sources = list(test["source"])[:: args.every]
    systems: dict[str, dict] = {"greedy": {}}
    for draft in args.draft or ["source"]:
        prefix, _, path = draft.rpartition(":")
        name = f"draft={prefix + ':' if prefix else ''}{Path(path).name}"
        for count in args.num_assistant_tokens or [None]:
            for unmatched in args.unmatched_tokens or [None]:
                drafter = load_drafter(draft, model, tokenizer)
                label = name if count is None else f"{name}, k={count}"
                if count is not None:
                    drafter.generation_config.num_assistant_tokens = count
                if unmatched is not None:
                    if not hasattr(drafter, "unmatched_tokens"):
                        raise SystemExit(f"--unmatched-tokens: {draft} is not a lookup drafter")
                    drafter.unmatched_tokens = unmatched
                    label += f", unmatched={unmatched}"
                systems[label] = {"assistant_model": drafter}
    oracles = []
    if args.oracle:
        nat = load_translator(args.oracle)[0]
        oracles = [oracle_drafter(model, None), oracle_drafter(model, nat)]
        for oracle in oracles:
            oracle.generation_config.num_assistant_tokens = args.oracle_tokens
        systems["oracle (greedy output as the draft)"] = {"assistant_model": oracles[0]}
        systems[f"oracle after {Path(args.oracle).name}'s pass"] = {"assistant_model": oracles[1]}
    marian = marian_like(model.config) if args.marian else None
    marian_times: list[float] = []
    calls = {"n": 0}
    model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    times = {name: [] for name in systems}
    outputs = {name: [] for name in systems}
    target_calls = {name: 0 for name in systems}
    with torch.inference_mode():
        for index, source in enumerate(sources):
            ids = tokenizer(source, return_tensors="pt")
            if oracles:  # untimed: the output the oracles draft from
                greedy = model.generate(**ids, num_beams=1, do_sample=False, max_new_tokens=args.max_new_tokens)
                for oracle in oracles:
                    oracle.encoder.ids = greedy
            order = list(systems) if index % 2 == 0 else list(systems)[::-1]
            for name in order:
                calls["n"] = 0
                start = time.perf_counter()
                out = model.generate(**ids, num_beams=1, do_sample=False, max_new_tokens=args.max_new_tokens,
                                     **systems[name])
                times[name].append(time.perf_counter() - start)
                outputs[name].append(out[0].tolist())
                target_calls[name] += calls["n"]
            if marian is not None:
                steps = len(outputs["greedy"][-1]) - 1  # greedy's new tokens on this sentence
                start = time.perf_counter()
                marian.generate(**ids, num_beams=1, do_sample=False, min_new_tokens=steps, max_new_tokens=steps)
                marian_times.append(time.perf_counter() - start)
    tokens = sum(len(ids) - 1 for ids in outputs["greedy"])
    result = {
        "run": Path(args.run).name, "sentences": len(sources), "every": args.every, "generated_tokens": tokens,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "systems": {},
    }
    for name in systems:
        wall = sum(times[name])
        result["systems"][name] = {
            "wall_s": round(wall, 2),
            "sentences_per_s": round(len(sources) / wall, 3),
            "median_sentence_ms": round(1000 * statistics.median(times[name]), 1),
            "target_forward_calls": target_calls[name],
            "tokens_per_target_call": round(tokens / target_calls[name], 3),
            "speedup_vs_greedy": round(sum(times["greedy"]) / wall, 3),
            "identical_to_greedy": outputs[name] == outputs["greedy"],
        }
        if marian is not None:
            result["systems"][name]["vs_marian"] = round(sum(marian_times) / wall, 3)
    if marian is not None:
        result["marian_greedy_same_lengths"] = {
            "wall_s": round(sum(marian_times), 2), "sentences_per_s": round(len(sources) / sum(marian_times), 3),
            "median_sentence_ms": round(1000 * statistics.median(marian_times), 1),
        }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
