"""Training throughput on a CPU, and the loss each setting reaches, side by side in one run.

    python bench/train.py                                   # the shipped size (small), POP909 examples
    python bench/train.py --presets small tiny --steps 30 --threads 1 2

For each setting (threads, fp32 or bf16 autocast, torch.compile on or off) it trains the same model from the
same initialisation on the same batches of real infilling examples (built once, before timing, so the data
loader is not measured), and reports tokens/s after a warm-up and the mean loss of the last steps. A setting is
only worth adopting at the same loss. bf16 runs only where the CPU has native bf16 (avx512_bf16 or amx_bf16).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import torch

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.data.dataset import example_loader
from midi_rwkv.data.prefilter import split_subset
from midi_rwkv.model import PRESETS, RWKV7, init_weights
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.examples import ExampleConfig
from midi_rwkv.train.module import L2Wrap, OptimConfig, lm_loss, param_groups


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def has_bf16() -> bool:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def batches(data: str, tokenizer: InfillTokenizer, ctx_len: int, batch: int, steps: int) -> list[dict]:
    corpus = split_subset(open_corpus(data), "train")
    loader = example_loader(corpus, list(range(len(corpus))), tokenizer, ExampleConfig(max_len=ctx_len + 1), ctx_len,
                            batch, steps, seed=0)
    return list(loader)


def run(preset: str, tokenizer: InfillTokenizer, data: list[dict], threads: int, bf16: bool, compiled: bool,
        warmup: int) -> tuple[float, float]:
    """(tokens/s after the warm-up steps, mean loss of the last 10 steps)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = init_weights(RWKV7(PRESETS[preset](vocab_size=tokenizer.vocab_size)), seed=0).train()
    optimizer = torch.optim.AdamW(param_groups(model, OptimConfig(lr_init=3e-4, lr_final=3e-4)), betas=(0.9, 0.99),
                                  eps=1e-18)
    forward = torch.compile(model) if compiled else model
    losses, tokens, start = [], 0, None
    for step, batch in enumerate(data):
        if step == warmup:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, _ = forward(batch["input_ids"])
        loss = lm_loss(logits.float(), batch["labels"])
        optimizer.zero_grad()
        L2Wrap.apply(loss, logits).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if step >= warmup:
            tokens += batch["input_ids"].numel()
    seconds = time.perf_counter() - start
    return tokens / seconds, sum(losses[-10:]) / len(losses[-10:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="pop909:../shared/data/pop909")
    p.add_argument("--tokenizer", default="midi_rwkv.tokenizer.json")
    p.add_argument("--presets", nargs="+", default=["small"], choices=list(PRESETS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--ctx-len", type=int, default=1024)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=30, help="steps per setting (the first 3 are warm-up)")
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    args = p.parse_args()
    tokenizer = InfillTokenizer.load(args.tokenizer)
    data = batches(args.data, tokenizer, args.ctx_len, args.batch, args.steps)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads available, native bf16: {has_bf16()}; "
          f"{args.steps} steps of {args.batch} x {args.ctx_len} tokens (real POP909 examples)")
    print("| model | threads | precision | compile | tokens/s | loss (last 10 steps) |\n|---|---:|---|---|---:|---:|")
    for preset in args.presets:
        for threads in args.threads:
            for bf16 in ([False, True] if has_bf16() else [False]):
                for compiled in ([False, True] if args.compile else [False]):
                    speed, loss = run(preset, tokenizer, data, threads, bf16, compiled, warmup=3)
                    print(f"| {preset} | {threads} | {'bf16' if bf16 else 'fp32'} | {'on' if compiled else 'off'} | "
                          f"{speed:,.0f} | {loss:.3f} |", flush=True)
                    if not math.isfinite(loss):
                        print("  (the loss diverged)")


if __name__ == "__main__":
    main()
