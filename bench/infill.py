"""Inference speed of the PyTorch and GGML engines (random weights are fine for speed).

    python bench/infill.py                                  # small (vocab 4,000) and paper-size (16,000), all engines
    python bench/infill.py --presets small --engines torch ggml-f16 --threads 1 2
    python bench/infill.py --write-doc docs/inference.md    # and write the table into the document's block

One row per model, engine and thread count: prompt ingestion (tokens/s over a 2,000-token prompt), decoding
(tokens/s, all streams together, at batch 1 and 8), and a whole infill: 8 candidates of 4 bars (about 4 x 40
tokens each) after the cached 2,000-token prompt (a cold prompt adds its ingestion, the first column).
Engines: torch, ggml-f32, ggml-f16 (the GGML ones need llama-cpp-python: pip install '.[ggml]').
``--threads N``: the PyTorch engine's threads, or llama.cpp's on GGML, whose sampler then runs on one torch
thread (torch and llama.cpp share one OpenMP runtime, and a second torch thread spinning beside llama.cpp's
made decoding 4-8x slower on a busy machine: docs/inference.md, "Why prompt reading speed varies"). Both
engines run their threads beyond the first only on CPUs that other programs leave free (the row says
"2, ran 1" when it chose fewer); ``--pinned`` adds a row that always runs them all (the engines before they
looked). Each row ends with the 1-minute load average when it started (/proc/loadavg): on a shared
machine that, more than the engine, decides what a second thread is worth.
Run it once more while another program keeps a core busy (``yes > /dev/null &``) to see what a
second thread costs when the machine is not yours alone (``--write-doc docs/inference.md --block busy``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.generator import Constraint, Generator, TorchEngine
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import PRESETS, RWKV7, init_weights

import docblock  # bench/docblock.py, beside this file
from machine import cpu_name  # bench/machine.py, beside this file

# llama.cpp's CPU WKV7 kernel reads heads in blocks of 32 floats under AVX2 and 64 under AVX-512 (ggml/engine.py):
# one 64-wide head (the tiny preset is 64 wide) runs under both
TINY_GGML_HEAD = 64


class FixedLength(Constraint):
    """Stops after ``n`` tokens, like a 4-bar section of ~40 tokens per bar."""

    def __init__(self, n: int):
        self.n, self.count, self.done = n, 0, False

    def after_sample(self, token):
        self.count += 1
        self.done = self.count >= self.n
        return [token]


def make_engine(engine: str, model: RWKV7, threads: int, folder: Path, pinned: bool = False):
    """A fresh engine (no cached prompt) for ``engine`` (``pinned``: it always runs all its threads)."""
    if engine == "torch":
        return TorchEngine(model, threads=threads, share_cores=not pinned)
    torch.set_num_threads(1)  # the sampler's (see the module's doc)
    from midi_rwkv.inference.ggml.engine import GGMLEngine
    from midi_rwkv.inference.ggml.gguf import export_gguf

    dtype = engine.removeprefix("ggml-")
    path = folder / f"model.{dtype}.gguf"
    if not path.exists():
        export_gguf(model, path, dtype)
    return GGMLEngine(path, threads=threads, share_cores=not pinned)


def load_average() -> float | None:
    """The 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


ENGINES = {"torch": "PyTorch", "ggml-f32": "GGML f32", "ggml-f16": "GGML f16"}
COLUMNS = ("prompt tokens/s", "decode batch 1 tokens/s", "decode batch 8 tokens/s", "8 x 4 bars, cached prompt",
           "load average")


def bench(
    preset: str, vocab: int | None, prompt_len: int, section: int, engine: str, threads: int, folder: Path,
    pinned: bool = False,
) -> dict:
    """One row: the model's label, the engine's, the four measures of COLUMNS (rates and seconds) and the load
    average when it started."""
    config = PRESETS[preset](vocab_size=vocab) if vocab else PRESETS[preset]()
    if preset == "tiny" and engine != "torch":
        config = replace(config, head_size=TINY_GGML_HEAD)
    model = init_weights(RWKV7(config), seed=0).eval()
    prompt = torch.randint(0, config.vocab_size, (prompt_len,), generator=torch.Generator().manual_seed(0)).tolist()
    sampler = SamplerConfig()
    row = {"model": f"{preset} ({config.n_layer} x {config.n_embd}, head {config.head_size}, "
                    f"vocab {config.vocab_size:,})", "engine": f"{ENGINES[engine]}, {threads}" + " pinned" * pinned,
           COLUMNS[4]: load_average()}
    runner = make_engine(engine, model, threads, folder, pinned)
    generator = Generator(runner)
    t0 = time.perf_counter()
    generator.prefill(prompt)
    row[COLUMNS[0]] = prompt_len / (time.perf_counter() - t0)
    for k, column in ((1, COLUMNS[1]), (8, COLUMNS[2])):
        steps = 64
        t0 = time.perf_counter()
        generator.generate(prompt, [FixedLength(steps) for _ in range(k)], sampler, seed=0)  # prompt cached
        row[column] = steps * k / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    generator.generate(prompt, [FixedLength(section) for _ in range(8)], sampler, seed=0)
    row[COLUMNS[3]] = time.perf_counter() - t0
    used = sorted(runner.threads_used)
    if used != [threads]:
        row["engine"] += ", ran " + " or ".join(map(str, used))
    return row


def table(rows: list[dict]) -> str:
    """The markdown table the bench prints and writes into a document (a model's label on its first row only)."""
    lines = ["| model | engine, threads | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---:|" * len(COLUMNS)]
    for i, row in enumerate(rows):
        model = row["model"] if i == 0 or rows[i - 1]["model"] != row["model"] else ""
        load = row[COLUMNS[4]]
        cells = [f"{row[c]:,.0f}" for c in COLUMNS[:3]] + [f"{row[COLUMNS[3]]:.2f} s",
                                                          "?" if load is None else f"{load:.2f}"]
        lines.append((f"| {model} |" if model else "| |") + f" {row['engine']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], help="model presets (default: small paper)")
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["torch", "ggml-f32", "ggml-f16"],
        help="torch, ggml-f32, ggml-f16 (default: all three)",
    )
    parser.add_argument("--vocab", type=int,
                        help="vocabulary size (default: each preset's own: small 4,000, paper 16,000)")
    parser.add_argument("--prompt", type=int, default=2000, help="prompt tokens (default 2000)")
    parser.add_argument("--section", type=int, default=160, help="tokens per candidate (default 160 = 4 bars x 40)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to try (default: 1 2)")
    parser.add_argument("--pinned", action="store_true",
                        help="add GGML rows that run all their threads however busy the CPUs are")
    docblock.add_arguments(parser)
    args = parser.parse_args()
    rows, not_run = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for engine in args.engines:
                for threads in args.threads:
                    folder = Path(tmp) / preset
                    folder.mkdir(exist_ok=True)
                    try:
                        rows.append(bench(preset, args.vocab, args.prompt, args.section, engine, threads, folder))
                        if args.pinned and threads > 1:
                            rows.append(bench(preset, args.vocab, args.prompt, args.section, engine, threads,
                                              folder, pinned=True))
                    except MidiRwkvError as err:  # e.g. head widths this machine's llama.cpp kernel cannot read
                        print(f"bench/infill.py: {preset} on {ENGINES[engine]} not run: {err}", file=sys.stderr)
                        not_run[(preset, engine)] = str(err)
                        break  # the other thread counts would be refused the same way
    text = (f"Random weights, a {args.prompt:,}-token prompt, 8 candidates x {args.section} tokens, "
            f"{cpu_name()}, load average at each row's start (1 minute):\n\n{table(rows)}")
    text += "".join(f"\n\nNot run: {preset} on {ENGINES[engine]}: {why}" for (preset, engine), why in not_run.items())
    print(text)
    docblock.write_from_args(args, "bench/infill.py", text)


if __name__ == "__main__":
    main()
