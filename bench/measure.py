"""How the benchmark measures: batches, training steps, generation, peak step memory, FLOPs and the machine's matmul
throughput. Nothing here knows which model is ours."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, PreTrainedModel

from pairs import BOS, EOS, MASK, PAD, Size

aten = torch.ops.aten
FIRST_TOKEN = 5  # ids below are special (pad, bos, eos, unk, mask)


# ----------------------------------------------------------------------------------------------------------- batches
def _lengths(generator: torch.Generator, count: int, mean: int) -> list[int]:
    """Lengths uniform in [mean/2, 3 mean/2]: realistic sentence-length spread, so batches carry some padding."""
    low, high = max(2, mean // 2), max(3, (3 * mean) // 2)
    return torch.randint(low, high + 1, (count,), generator=generator).tolist()


def _padded(generator: torch.Generator, lengths: list[int], vocab: int, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token rows ending in EOS, padded to the longest; returns (ids, attention_mask)."""
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)
    for row, length in enumerate(lengths):
        tokens = torch.randint(FIRST_TOKEN, vocab, (length,), generator=generator)
        tokens[-1] = EOS
        span = slice(width - length, width) if left else slice(0, length)
        ids[row, span] = tokens
        mask[row, span] = 1
    return ids, mask


def training_batches(kind: str, size: Size, count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """`count` fixed batches for a model kind; the same tensors go to both sides of a pair."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        if kind == "seq2seq":
            batch = size.seq2seq_batch
            source, source_mask = _padded(generator, _lengths(generator, batch, size.seq2seq_length), size.vocab)
            target, target_mask = _padded(generator, _lengths(generator, batch, size.seq2seq_length), size.vocab)
            labels = target.masked_fill(target_mask == 0, -100)
            batches.append({"input_ids": source, "attention_mask": source_mask, "labels": labels})
        elif kind == "mlm":
            ids, mask = _padded(generator, _lengths(generator, size.stack_batch, size.stack_length), size.vocab)
            chosen = (torch.rand(ids.shape, generator=generator) < 0.15) & (mask == 1)
            labels = ids.masked_fill(~chosen, -100)
            batches.append({"input_ids": ids.masked_fill(chosen, MASK), "attention_mask": mask, "labels": labels})
        else:
            ids, mask = _padded(generator, _lengths(generator, size.stack_batch, size.stack_length), size.vocab)
            batches.append({"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)})
    return batches


def counted_tokens(kind: str, batch: dict[str, torch.Tensor]) -> int:
    """Tokens a step is credited with: target tokens for seq2seq, real (unpadded) tokens for the stacks."""
    if kind == "seq2seq":
        return int((batch["labels"] != -100).sum())
    return int(batch["attention_mask"].sum())


def generation_inputs(kind: str, size: Size, seed: int) -> dict[str, torch.Tensor]:
    """Sources (right padded) for seq2seq models, prompts (left padded) for causal LMs."""
    generator = torch.Generator().manual_seed(seed)
    lengths = _lengths(generator, size.generate_batch, size.seq2seq_length)
    ids, mask = _padded(generator, lengths, size.vocab, left=kind == "causal")
    return {"input_ids": ids, "attention_mask": mask}


# ------------------------------------------------------------------------------------------------------------ timing
def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Trainer:
    """One model with its optimizer: `step(batch)` is forward + backward + AdamW step."""

    model: PreTrainedModel
    optimizer: torch.optim.Optimizer

    @classmethod
    def create(cls, model: PreTrainedModel, lr: float) -> Trainer:
        model.train()
        parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
        return cls(model, torch.optim.AdamW(parameters, lr=lr))

    def clear(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def zero(self) -> None:
        self.optimizer.zero_grad(set_to_none=False)

    def step(self, batch: dict[str, torch.Tensor], *, keep_gradients: bool = False) -> None:
        """One step; gradients are dropped first (torch's default) or, with `keep_gradients`, zeroed in place, as a
        training loop does that holds them between steps."""
        self.optimizer.zero_grad(set_to_none=not keep_gradients)
        loss = self.model(**batch).loss
        loss.backward()
        self.optimizer.step()


def timed(function: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def alternate(calls: dict[str, Callable[[], object]], repetitions: int, device: torch.device) -> dict[str, list[float]]:
    """Run the calls in turns, A B then B A, so that machine noise (other processes, clock changes) hits every side;
    returns each side's wall times."""
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repetition in range(repetitions):
        order = names if repetition % 2 == 0 else names[::-1]
        for name in order:
            times[name].append(timed(calls[name], device))
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


# ------------------------------------------------------------------------------------------------------------ memory
@contextlib.contextmanager
def quiet_stderr():
    """Silence the profiler's start/stop lines, which kineto writes to file descriptor 2 from C++."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_step_memory(function: Callable[[], object], device: torch.device, prepare: Callable[[], object] | None = None) -> int:
    """Peak bytes held by tensors allocated during one call, above what existed before it (`prepare` runs first,
    outside the measurement: e.g. dropping last step's gradients, so that their release is not counted).

    CPU: torch keeps no allocator statistics, so the profiler's memory events are replayed (every tensor allocation
    and free of the c10 CPU allocator, with sizes, in time order) and the running total's maximum is taken. Tensors
    alive before the call (weights, optimizer state, the batch) are the baseline and not counted; activations,
    saved tensors, gradients and temporaries are. CUDA: the caching allocator's peak above the starting allocation.
    """
    if prepare is not None:
        prepare()
    gc.collect()
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        function()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        function()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


# ------------------------------------------------------------------------------------------------------------- flops
def _sdpa_cpu_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels; the CPU flash kernel gets the same formulas here
CPU_ATTENTION_FLOPS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
}


def count_flops(function: Callable[[], object]) -> int:
    """Matrix-multiply FLOPs (mm, addmm, bmm, attention kernels) of one call, counted at dispatch."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        function()
    return counter.get_total_flops()


def matmul_throughput(shapes: list[tuple[int, int, int]], repetitions: int, device: torch.device, dtype: torch.dtype) -> list[dict[str, float]]:
    """Measured GFLOP/s of (m, k) @ (k, n) for each shape (median of `repetitions` after warm-up)."""
    rows = []
    for m, k, n in shapes:
        left = torch.randn(m, k, device=device, dtype=dtype)
        right = torch.randn(k, n, device=device, dtype=dtype)
        for _ in range(3):
            left @ right
        times = [timed(lambda: left @ right, device) for _ in range(repetitions)]
        rows.append({"m": m, "k": k, "n": n, "gflops": 2 * m * k * n / median(times) / 1e9})
    return rows


# -------------------------------------------------------------------------------------------------------- generation
class StepClock(LogitsProcessor):
    """Records the time at which each decoding step's scores are ready (called once per step by `generate`)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.times.append(time.perf_counter())
        return scores


def generation_config(new_tokens: int, beams: int) -> GenerationConfig:
    """Greedy (beams = 1) or beam search with the cache, exactly `new_tokens` tokens, the same special ids on both
    sides and no logits processors: EOS is left out (a random model would stop at random places, and forcing the
    length with `min_new_tokens` adds a processor whose cost would dilute both sides alike)."""
    return GenerationConfig(
        max_new_tokens=new_tokens,
        num_beams=beams,
        do_sample=False,
        use_cache=True,
        early_stopping=False,
        length_penalty=1.0,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=None,
        decoder_start_token_id=BOS,
        forced_eos_token_id=None,
    )


def generate_call(model: PreTrainedModel, inputs: dict[str, torch.Tensor], config: GenerationConfig, clock: StepClock | None = None) -> Callable[[], object]:
    """A `generate()` call with `config` as the model's generation config (passed as an argument, unset fields such
    as `eos_token_id=None` would be filled from the model's own config)."""
    processors = LogitsProcessorList([clock] if clock is not None else [])

    def call() -> torch.Tensor:
        saved, model.generation_config = model.generation_config, config
        try:
            if clock is not None:
                clock.times.clear()
                clock.times.append(time.perf_counter())
            with torch.inference_mode():
                return model.generate(**inputs, logits_processor=processors)
        finally:
            model.generation_config = saved

    return call


def per_token_costs(times: list[float], window: int) -> dict[str, float]:
    """Milliseconds per decoding step early (steps 2 .. window+1) and late (the last `window` steps) in one
    generation, and their ratio: about 1 when the per-token cost does not grow with length."""
    steps = [later - earlier for earlier, later in zip(times[1:], times[2:])]  # step 1 also runs the encoder
    early = median(steps[:window]) * 1e3
    late = median(steps[-window:]) * 1e3
    return {"early_ms": early, "late_ms": late, "growth": late / early, "steps": len(steps) + 1}
