"""Inference speed of the PyTorch engine (random weights are fine for speed).

    python bench/infill.py                 # tiny and paper-size models
    python bench/infill.py --presets paper --threads 2

Rows: prompt ingestion (tokens/s over a 2,000-token prompt), decoding (tokens/s per stream at
batch 1 and 8), and a whole infill: 8 candidates of 4 bars (about 4 x 40 tokens each) after a
2,000-token context, once from a cold cache and once with the prompt cached.
The GGML engine of the inference issue is not built yet; it will get rows here.
"""

from __future__ import annotations

import argparse
import time

import torch

from midi_rwkv.inference.engine import Constraint, Engine
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import PRESETS, RWKV7, init_weights


class FixedLength(Constraint):
    """Stops after ``n`` tokens, like a 4-bar section of ~40 tokens per bar."""

    def __init__(self, n: int):
        self.n, self.count, self.done = n, 0, False

    def after_sample(self, token):
        self.count += 1
        self.done = self.count >= self.n
        return [token]


def bench(preset: str, vocab: int, prompt_len: int, section: int) -> list[tuple]:
    model = init_weights(RWKV7(PRESETS[preset](vocab_size=vocab)), seed=0).eval()
    prompt = torch.randint(0, vocab, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = SamplerConfig()
    rows = []
    engine = Engine(model)
    t0 = time.perf_counter()
    engine.prefill(prompt)
    rows.append((preset, "prompt ingestion", f"{prompt_len / (time.perf_counter() - t0):,.0f} tokens/s"))
    for k in (1, 8):
        steps = 64
        t0 = time.perf_counter()
        engine.generate(prompt, [FixedLength(steps) for _ in range(k)], sampler, seed=0)  # prompt cached
        rate = steps / (time.perf_counter() - t0)
        rows.append((preset, f"decode, batch {k}", f"{rate:,.1f} steps/s = {rate * k:,.0f} tokens/s"))
    for label, cold in (("8 x 4 bars, cold prompt", True), ("8 x 4 bars, cached prompt", False)):
        engine = Engine(model) if cold else engine
        t0 = time.perf_counter()
        engine.generate(prompt, [FixedLength(section) for _ in range(8)], sampler, seed=0)
        rows.append((preset, label, f"{time.perf_counter() - t0:.2f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], help="model presets (default: tiny paper)")
    parser.add_argument("--vocab", type=int, default=16000, help="vocabulary size (default 16000)")
    parser.add_argument("--prompt", type=int, default=2000, help="prompt tokens (default 2000)")
    parser.add_argument("--section", type=int, default=160, help="tokens per candidate (default 160 = 4 bars x 40)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [row for preset in args.presets for row in bench(preset, args.vocab, args.prompt, args.section)]
    print(f"PyTorch engine, {args.threads} threads, vocab {args.vocab}, prompt {args.prompt} tokens")
    print("| model | measure | result |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
