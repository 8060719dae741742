"""Does the GGML engine on this machine compute what the PyTorch engine computes, for a real model and prompt?

    python bench/ggml_parity.py                                   # the shipped model, the test chorale
    python bench/ggml_parity.py --model runs/x/model.pth --midi song.mid --track 1 --bars 4:8
    CPU=avx2 TARGET=/tmp/ggml-avx2 scripts/install-ggml.sh        # an AVX2 build, to check that path too
    PYTHONPATH=/tmp/ggml-avx2 python bench/ggml_parity.py

llama.cpp's WKV7 kernel reads heads in blocks whose width depends on the instructions it was built for
(32 floats with AVX2, 64 with AVX-512), so a build for another CPU kind is another code path. This prints
the build's instruction sets, what ``--engine auto`` chooses, and, for the bar-infill prompt of the given
span: the relative error of the logits after every prompt token (f32 and f16), how often the top token
agrees, and whether greedy candidates are token for token the PyTorch engine's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from midi_rwkv.inference.constraints import BarInfillConstraint
from midi_rwkv.inference.generator import Generator, TorchEngine
from midi_rwkv.inference.ggml import choose_engine, ggml_engine
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.sampler import SamplerConfig

CHORALE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "bach_bwv66.6.mid"


def logits_along(engine, prompt: list[int], every: int) -> torch.Tensor:
    """Logits after each ``every``-th prompt token, read incrementally through the engine's state."""
    out, state = [], None
    for start in range(0, len(prompt), every):
        logits, state = engine.prefill(prompt[start : start + every], state)
        out.append(logits.float())
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a .pth model (default: the shipped midi_rwkv.pth)")
    parser.add_argument("--midi", default=str(CHORALE), help="MIDI file for the prompt (default: a Bach chorale)")
    parser.add_argument("--track", type=int, default=1, help="track to infill (default 1)")
    parser.add_argument("--bars", default="5:8", help="bars A:B, counted from 1 (default 5:8)")
    parser.add_argument("--every", type=int, default=16, help="compare logits after every N prompt tokens")
    args = parser.parse_args()

    import llama_cpp

    print("llama.cpp build:", llama_cpp.llama_print_system_info().decode().strip())
    infiller = Infiller.load(args.model, engine="torch")
    model = infiller.generator.engine.model
    print(f"model: {model.config.n_layer} x {model.config.n_embd}, head size {model.config.head_size}; "
          f"--engine auto chooses: {choose_engine('auto', model.config.head_size)}")
    piece = infiller.tokenizer.prepare(args.midi)
    a, b = (int(x) for x in args.bars.split(":"))
    enc = infiller.tokenizer.encode(piece)
    seq = infiller.tokenizer.bar_infill(enc, args.track, (a - 1, b), context_bars=16, with_target=False,
                                        layout=infiller.layout)
    prompt = seq.ids
    want = logits_along(TorchEngine(model), prompt, args.every)
    print(f"prompt: {len(prompt)} tokens ({infiller.layout}), logits compared at {len(want)} points")
    section = [(s.header, s.controls) for s in seq.section]
    greedy = SamplerConfig(temperature=0, repetition_penalty=1)
    reference = Generator(model).generate(prompt, [BarInfillConstraint(infiller.tables, section)], greedy, 400)[0]
    for engine in ("ggml-f32", "ggml"):
        engine = ggml_engine(model, engine)
        got = logits_along(engine, prompt, args.every)
        rel = ((got - want).norm(dim=-1) / want.norm(dim=-1)).max().item()
        top = (got.argmax(-1) == want.argmax(-1)).float().mean().item()
        ids = Generator(engine).generate(prompt, [BarInfillConstraint(infiller.tables, section)], greedy, 400)[0].ids
        same = "the same" if ids == reference.ids else "DIFFERENT"
        print(f"{engine:9s} max relative logit error {rel:.1e}, top token agrees {top:.0%}, "
              f"greedy infill ({len(reference.ids)} tokens) {same}")


if __name__ == "__main__":
    main()
