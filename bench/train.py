"""Training throughput, and the loss each setting reaches, side by side in one run (CPU or GPU).

    python bench/train.py                                   # the shipped size (small), POP909 examples, CPU
    python bench/train.py --presets small tiny --steps 30 --threads 1 2
    python bench/train.py --device cuda --data random --presets paper small --batch 16 64 --json out/train.json

For each setting (threads, batch, fp32 or bf16 autocast, torch.compile on or off) it trains the same model from the
same initialisation on the same batches (built once, before timing, so the data loader is not measured), and reports
tokens/s after a warm-up and the mean loss of the last steps. A setting is only worth adopting at the same loss.
``--data random`` draws uniform token ids instead of infilling examples: for speed alone, and on a machine without
MidiTok (the GPU machine). On a CPU, bf16 runs only where the CPU has native bf16 (avx512_bf16 or amx_bf16); on a GPU
the default is bf16. A batch that does not fit in GPU memory is reported as ``oom`` and the run goes on.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from midi_rwkv.model import PRESETS, RWKV7, init_weights
from midi_rwkv.train.module import L2Wrap, OptimConfig, lm_loss, param_groups

from machine import cpu_name  # bench/machine.py, beside this file


def has_bf16() -> bool:
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    return "avx512_bf16" in flags or "amx_bf16" in flags


def example_batches(data: str, tokenizer_path: str, ctx_len: int, batch: int, steps: int) -> list[dict]:
    """Real infilling examples (needs MidiTok and the corpus)."""
    from midi_rwkv.data.corpora import open_corpus
    from midi_rwkv.data.dataset import InfillDataset, loader_of
    from midi_rwkv.data.prefilter import split_subset
    from midi_rwkv.tokenizer import InfillTokenizer
    from midi_rwkv.tokenizer.examples import ExampleConfig

    tokenizer = InfillTokenizer.load(tokenizer_path)
    corpus = split_subset(open_corpus(data), "train")
    data = InfillDataset(corpus, list(range(len(corpus))), tokenizer, ExampleConfig(max_len=ctx_len + 1))
    loader = loader_of(data, ctx_len, batch, steps, seed=0)
    return list(loader)


def random_batches(vocab_size: int, ctx_len: int, batch: int, steps: int, device: str) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(steps):
        ids = torch.randint(0, vocab_size, (batch, ctx_len + 1), generator=g).to(device)
        out.append({"input_ids": ids[:, :-1], "labels": ids[:, 1:]})
    return out


def run(preset: str, vocab_size: int, data: list[dict], device: str, bf16: bool, compiled: bool,
        warmup: int) -> tuple[float, float]:
    """(tokens/s after the warm-up steps, mean loss of the last 10 steps)."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = init_weights(RWKV7(PRESETS[preset](vocab_size=vocab_size)), seed=0).to(device).train()
    optimizer = torch.optim.AdamW(param_groups(model, OptimConfig(lr_init=3e-4, lr_final=3e-4)), betas=(0.9, 0.99),
                                  eps=1e-18)
    forward = torch.compile(model) if compiled else model
    losses, tokens, start = [], 0, None
    for step, batch in enumerate(data):
        if step == warmup:
            sync()
            start = time.perf_counter()
        ids, labels = batch["input_ids"].to(device), batch["labels"].to(device)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits, _ = forward(ids)
        loss = lm_loss(logits.float(), labels)
        optimizer.zero_grad()
        L2Wrap.apply(loss, logits).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.detach())  # no .item() per step: on a GPU it would wait for every step
        if step >= warmup:
            tokens += ids.numel()
    sync()
    seconds = time.perf_counter() - start
    last = torch.stack(losses[-10:]).float().mean().item()
    return tokens / seconds, last


def measure(args, preset, threads, batch, bf16, compiled, tokenizer_vocab, cache: dict) -> dict:
    row = {"model": preset, "device": args.device, "threads": threads, "batch": batch, "ctx_len": args.ctx_len,
           "precision": "bf16" if bf16 else "fp32", "compile": compiled}
    vocab = args.vocab_size or (tokenizer_vocab if args.data != "random" else PRESETS[preset]().vocab_size)
    if (vocab, batch) not in cache:  # every setting of one batch size trains on the same batches
        cache[vocab, batch] = (random_batches(vocab, args.ctx_len, batch, args.steps, args.device)
                               if args.data == "random"
                               else example_batches(args.data, args.tokenizer, args.ctx_len, batch, args.steps))
    data = cache[vocab, batch]
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        speed, loss = run(preset, vocab, data, args.device, bf16, compiled, warmup=3)
        row |= {"tokens_per_s": speed, "loss": loss}
    except torch.OutOfMemoryError:
        row |= {"tokens_per_s": None, "loss": None, "oom": True}
    if args.device == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="pop909:../shared/data/pop909", help="a corpus spec, or 'random' token ids")
    p.add_argument("--tokenizer", default="midi_rwkv.tokenizer.json", help="for corpus data")
    p.add_argument("--vocab-size", type=int, help="model vocabulary (default: the tokenizer's; random: the preset's)")
    p.add_argument("--presets", nargs="+", default=["small"], help="model presets (paper, small, tiny, ...)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="CPU threads (ignored on cuda)")
    p.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"],
                   help="default: bf16 on cuda; fp32, and bf16 where the CPU has it natively")
    p.add_argument("--ctx-len", type=int, default=1024)
    p.add_argument("--batch", nargs="+", type=int, default=[4], help="sequences per step (several: one row each)")
    p.add_argument("--steps", type=int, default=30, help="steps per setting (the first 3 are warm-up)")
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    if unknown := [name for name in args.presets if name not in PRESETS]:
        p.error(f"unknown presets {unknown}; named ones: {list(PRESETS)}")
    precisions = args.precisions or (["bf16"] if args.device == "cuda" else ["fp32"] + (["bf16"] if has_bf16() else []))
    threads_list = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    tokenizer_vocab = None
    if args.data != "random":
        from midi_rwkv.tokenizer import InfillTokenizer

        tokenizer_vocab = InfillTokenizer.load(args.tokenizer).vocab_size
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{cpu_name()}, native bf16: {has_bf16()}"
    print(f"{where}; {args.steps} steps of batch x {args.ctx_len} tokens ({args.data})")
    print("| model | threads | batch | precision | compile | tokens/s | loss (last 10 steps) |\n"
          "|---|---:|---:|---|---|---:|---:|")
    rows, cache = [], {}
    for preset in args.presets:
        for threads in threads_list:
            torch.set_num_threads(threads)
            for batch in args.batch:
                for precision in precisions:
                    for compiled in ([False, True] if args.compile else [False]):
                        row = measure(args, preset, threads, batch, precision == "bf16", compiled, tokenizer_vocab,
                                      cache)
                        rows.append(row)
                        speed = "oom" if row.get("oom") else f"{row['tokens_per_s']:,.0f}"
                        loss = "" if row.get("oom") else f"{row['loss']:.3f}"
                        print(f"| {preset} | {threads} | {batch} | {precision} | {'on' if compiled else 'off'} | "
                              f"{speed} | {loss} |", flush=True)
                        if row.get("loss") is not None and not math.isfinite(row["loss"]):
                            print("  (the loss diverged)")
                        if args.json:  # after every row: a run stopped at its time limit keeps what it measured
                            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                            Path(args.json).write_text(json.dumps({"where": where, "data": args.data, "rows": rows},
                                                                  indent=1) + "\n")


if __name__ == "__main__":
    main()
