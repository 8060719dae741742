"""Example assembly: the MIDI-based builder against the compiled corpus, side by side, on one core.

    python bench/data.py --compiled runs/compiled                 # 200 training examples from each shard's source
    python bench/data.py --compiled runs/compiled --examples 500 --step-tokens-per-s 5400

Both sides draw the same (piece, seed) keys, as the training Dataset does (load, draw, labels), so they build the
same examples; the table gives tokens per second of assembled examples, the speed-up, and what share of a training
step assembling its batch costs at the given model throughput (``--step-tokens-per-s``, from bench/train.py on this
machine). Nothing is asserted: record the table, with the CPU it names, in your notes.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
from machine import cpu_name  # bench/machine.py, beside this file


def timed(dataset, keys) -> tuple[float, int, int]:
    """(seconds, tokens, examples) to build every key's example."""
    tokens = built = 0
    start = time.perf_counter()
    for key in keys:
        item = dataset[key]
        if item is not None:
            tokens += len(item["input_ids"]) + 1
            built += 1
    return time.perf_counter() - start, tokens, built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compiled", default="runs/compiled", help="a compiled corpus (folder of shards)")
    parser.add_argument("--examples", type=int, default=200, help="examples per shard and side")
    parser.add_argument("--ctx-len", type=int, default=2048, help="tokens per example, as training's --ctx-len")
    parser.add_argument("--step-tokens-per-s", type=float, default=5400.0,
                        help="training throughput to compare with (bench/train.py; default: the small model's)")
    args = parser.parse_args()

    from midi_rwkv.data.compiled import CompiledCorpus, CompiledDataset
    from midi_rwkv.data.corpora import open_corpus
    from midi_rwkv.data.dataset import InfillDataset
    from midi_rwkv.tokenizer import InfillTokenizer
    from midi_rwkv.tokenizer.examples import ExampleConfig

    torch.set_num_threads(1)
    corpus = CompiledCorpus(args.compiled)
    tokenizer = InfillTokenizer.load(corpus.tokenizer_file)
    config = ExampleConfig(max_len=args.ctx_len + 1)
    print(f"CPU: {cpu_name()}; one core; {args.examples} examples per shard; ctx {args.ctx_len}\n")
    print("| source | MIDI builder tok/s | compiled tok/s | speed-up | ms per example (MIDI / compiled) "
          "| data share of a step (MIDI / compiled) |")
    print("|---|---:|---:|---:|---:|---:|")
    total = {"midi": [0.0, 0], "compiled": [0.0, 0]}
    offset = 0
    for shard in corpus.shards:
        source = open_corpus(shard.meta["spec"])
        where = {piece: i for i, piece in enumerate(source.ids)}
        local = [where[p["id"]] for p in shard.meta["pieces"]]
        rng = random.Random(0)
        picks = [rng.randrange(len(local)) for _ in range(args.examples)]
        keys = [(p, rng.getrandbits(31)) for p in picks]
        midi = InfillDataset(source, local, tokenizer, config)
        fast = CompiledDataset(corpus, list(range(offset, offset + len(local))), config)
        offset += len(local)
        timed(midi, keys[:20]), timed(fast, keys[:20])  # warm-up: imports, caches, first page faults
        t_midi, tok_midi, n_midi = timed(midi, keys)
        t_fast, tok_fast, n_fast = timed(fast, keys)
        if tok_midi != tok_fast:
            print(f"note: {shard.meta['spec']}: the two sides built {tok_midi} and {tok_fast} tokens "
                  "(velocity shifts or notes out of range: see midi_rwkv/data/compiled.py)")
        total["midi"][0] += t_midi
        total["midi"][1] += tok_midi
        total["compiled"][0] += t_fast
        total["compiled"][1] += tok_fast
        rate_midi, rate_fast = tok_midi / t_midi, tok_fast / t_fast
        ms_midi, ms_fast = 1e3 * t_midi / max(1, n_midi), 1e3 * t_fast / max(1, n_fast)
        share_midi, share_fast = 100 * args.step_tokens_per_s / rate_midi, 100 * args.step_tokens_per_s / rate_fast
        print(f"| {shard.meta['label']} ({Path(shard.folder).name}) | {rate_midi:,.0f} | {rate_fast:,.0f} "
              f"| {rate_fast / rate_midi:.1f}x | {ms_midi:.1f} / {ms_fast:.2f} "
              f"| {share_midi:.1f} % / {share_fast:.2f} % |")
    rate_midi = total["midi"][1] / total["midi"][0]
    rate_fast = total["compiled"][1] / total["compiled"][0]
    print(f"| **all** | {rate_midi:,.0f} | {rate_fast:,.0f} | {rate_fast / rate_midi:.1f}x | | "
          f"{100 * args.step_tokens_per_s / rate_midi:.1f} % / {100 * args.step_tokens_per_s / rate_fast:.2f} % |")


if __name__ == "__main__":
    main()
