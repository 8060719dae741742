"""Inference speed of the PyTorch and GGML engines (random weights are fine for speed).

    python bench/infill.py                                  # tiny and paper-size, both engines
    python bench/infill.py --presets small --vocab 4000 --engines torch ggml-f16 --threads 1 2

Rows: prompt ingestion (tokens/s over a 2,000-token prompt), decoding (tokens/s per stream at
batch 1 and 8), and a whole infill: 8 candidates of 4 bars (about 4 x 40 tokens each) after a
2,000-token context, once from a cold cache and once with the prompt cached.
Engines: torch, ggml-f32, ggml-f16 (the GGML ones need llama-cpp-python: pip install '.[ggml]').
``--threads N`` gives the whole process N threads: torch's and llama.cpp's, for prompts and decoding.
Run it once more while another program keeps a core busy (``yes > /dev/null &``) to see what a
second thread costs when the machine is not yours alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from midi_rwkv.inference.generator import Constraint, Generator
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import PRESETS, RWKV7, init_weights

TINY_GGML_HEAD = 32  # llama.cpp's CPU WKV7 kernel needs heads of 32 or more (see ggml/backend.py)


class FixedLength(Constraint):
    """Stops after ``n`` tokens, like a 4-bar section of ~40 tokens per bar."""

    def __init__(self, n: int):
        self.n, self.count, self.done = n, 0, False

    def after_sample(self, token):
        self.count += 1
        self.done = self.count >= self.n
        return [token]


def make_backend(engine: str, model: RWKV7, threads: int, folder: Path):
    """A fresh backend (no cached prompt) for ``engine``."""
    torch.set_num_threads(threads)  # the sampler's too
    if engine == "torch":
        return model
    from midi_rwkv.inference.ggml.backend import GGMLBackend
    from midi_rwkv.inference.ggml.gguf import export_gguf

    dtype = engine.removeprefix("ggml-")
    path = folder / f"model.{dtype}.gguf"
    if not path.exists():
        export_gguf(model, path, dtype)
    return GGMLBackend(path, threads=threads)


def bench(
    preset: str, vocab: int, prompt_len: int, section: int, engine: str, threads: int, folder: Path
) -> list[tuple]:
    config = PRESETS[preset](vocab_size=vocab)
    if preset == "tiny" and engine != "torch":
        config = replace(config, head_size=TINY_GGML_HEAD)
    model = init_weights(RWKV7(config), seed=0).eval()
    prompt = torch.randint(0, vocab, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = SamplerConfig()
    label = (preset, engine, str(threads))
    rows = []
    generator = Generator(make_backend(engine, model, threads, folder))
    t0 = time.perf_counter()
    generator.prefill(prompt)
    rows.append((*label, "prompt ingestion", f"{prompt_len / (time.perf_counter() - t0):,.0f} tokens/s"))
    for k in (1, 8):
        steps = 64
        t0 = time.perf_counter()
        generator.generate(prompt, [FixedLength(steps) for _ in range(k)], sampler, seed=0)  # prompt cached
        rate = steps / (time.perf_counter() - t0)
        rows.append((*label, f"decode, batch {k}", f"{rate:,.1f} steps/s = {rate * k:,.0f} tokens/s"))
    for name, cold in (("8 x 4 bars, cold prompt", True), ("8 x 4 bars, cached prompt", False)):
        generator = Generator(make_backend(engine, model, threads, folder)) if cold else generator
        t0 = time.perf_counter()
        generator.generate(prompt, [FixedLength(section) for _ in range(8)], sampler, seed=0)
        rows.append((*label, name, f"{time.perf_counter() - t0:.2f} s"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], help="model presets (default: tiny paper)")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["torch", "ggml-f32", "ggml-f16"],
        help="torch, ggml-f32, ggml-f16 (default: all three)",
    )
    parser.add_argument("--vocab", type=int, default=16000, help="vocabulary size (default 16000)")
    parser.add_argument("--prompt", type=int, default=2000, help="prompt tokens (default 2000)")
    parser.add_argument("--section", type=int, default=160, help="tokens per candidate (default 160 = 4 bars x 40)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to try (default: 1 2)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for engine in args.engines:
                for threads in args.threads:
                    folder = Path(tmp) / preset
                    folder.mkdir(exist_ok=True)
                    rows += bench(preset, args.vocab, args.prompt, args.section, engine, threads, folder)
    print(f"vocab {args.vocab}, prompt {args.prompt} tokens")
    print("| model | engine | threads | measure | result |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
