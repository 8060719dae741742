"""``midi-rwkv infill`` (new bars for a track of a MIDI file) and ``export-gguf`` (a model for the GGML engine)."""

from __future__ import annotations

from pathlib import Path

import torch

from midi_rwkv.commands.options import add_settings, parse_spans, settings_from_args
from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.generator import TorchBackend
from midi_rwkv.inference.ggml import ENGINES
from midi_rwkv.inference.ggml.gguf import DTYPES
from midi_rwkv.inference.infiller import ControlRequest, Infiller
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.io import atomic_write
from midi_rwkv.model.checkpoint import DEFAULT_MODEL_NAME, open_model
from midi_rwkv.tokenizer.controls import DURATION_NAMES, DURATIONS, POLYPHONY_MAX, POLYPHONY_MIN


def parse_request(args) -> ControlRequest:
    density = polyphony = durations = None
    if args.density:
        try:
            density = [int(v) for v in args.density.split(",")]
        except ValueError:
            raise ControlError(f"--density '{args.density}': expected numbers like 6,8,8,4") from None
        if any(d < 0 for d in density):
            raise ControlError("--density values must be 0 or more")
    if args.polyphony:
        low, _, high = args.polyphony.partition("-")
        try:
            polyphony = (int(low), int(high or low))
        except ValueError:
            raise ControlError(f"--polyphony '{args.polyphony}': expected MIN-MAX like 1-3") from None
        if not POLYPHONY_MIN <= polyphony[0] <= polyphony[1] <= POLYPHONY_MAX:
            raise ControlError(f"--polyphony needs {POLYPHONY_MIN} <= MIN <= MAX <= {POLYPHONY_MAX}")
    if args.duration:
        names = [n.strip().lower() for n in args.duration.split(",")]
        unknown = [n for n in names if n not in DURATION_NAMES]
        if unknown:
            raise ControlError(f"--duration: unknown value(s) {unknown}; use {', '.join(DURATION_NAMES)}")
        durations = tuple(name in names for name in DURATION_NAMES)
    return ControlRequest(density, polyphony, durations)


def _describe(controls) -> str:
    out = []
    for c in controls:
        poly = f" poly {c.polyphony[0]}-{c.polyphony[1]}" if c.polyphony else ""
        durs = (
            ""
            if c.durations is None
            else " dur " + ("".join(n[0] if f else "." for (n, _), f in zip(DURATIONS, c.durations)))
        )
        out.append(f"[density {c.density}{poly}{durs}]")
    return " ".join(out)


def run_infill(args) -> int:
    spans = parse_spans(args.bars)
    request = parse_request(args)
    if len(spans) > 1 and request.density and len(request.density) > 1:
        raise ControlError("with several spans, --density takes one value for every bar")
    sampler = settings_from_args(SamplerConfig, args)
    if args.threads is not None and args.threads < 1:
        raise MidiRwkvError("--threads must be 1 or more")
    infiller = Infiller.load(
        args.model, args.tokenizer, args.state, args.lora, engine=args.engine, threads=args.threads or 1
    )
    if args.threads or not isinstance(infiller.generator.backend, TorchBackend):
        torch.set_num_threads(args.threads or 1)  # the sampler's (and the PyTorch engine's) threads
    print(f"engine: {infiller.generator.backend.name}")
    out = Path(args.output)
    source = Path(args.midi)
    piece = infiller.tokenizer.prepare(source)
    for span in spans:
        piece.token_span(*span)  # check every span before generating anything
    options = dict(
        sampler=sampler, context_bars=args.context, max_tokens=args.max_tokens, seed=args.seed, free=args.free
    )
    results = infiller.infill(piece, args.track, spans[0], request, args.n, **options)
    for span in spans[1:]:  # later spans see each candidate's earlier result
        results = [
            infiller.infill(infiller.tokenizer.prepare(c.score, piece.name), args.track, span, request, 1, **options)[0]
            for c in results
        ]
    if args.rank:
        results.sort(key=lambda c: c.control_error)
    bars_text = ",".join(f"{a + 1}-{b}" for a, b in spans)
    paths = [out / f"{source.stem}_track{args.track}_bars{bars_text}_{i}.mid" for i in range(1, len(results) + 1)]
    for path, c in zip(paths, results):  # every file first: a closed pipe on stdout then costs only the report
        atomic_write(path, lambda tmp, score=c.score: score.dump_midi(tmp))
    for path, c in zip(paths, results):
        g = c.generation
        note = (
            ""
            if g.stopped == "done"
            else f" (stopped at --max-tokens: {c.report.bars_generated}/{c.report.bars_expected} bars)"
        )
        print(
            f"{path}: {c.report.notes_added} notes, {g.sampled} tokens sampled in {g.seconds:.2f} s{note}, "
            f"control error {c.control_error:g}"
        )
        print(f"  requested {_describe(c.requested)}")
        print(f"  realised  {_describe(c.realised)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "infill",
        help="generate new bars for one track of a MIDI file",
        description="Replace bars of one track with candidates from the model; every other bar of every track is kept "
        "as it is. Without control options, each bar's controls are those of the original bar; with --free the model "
        "gets none and chooses (the printed 'requested' line then shows the original bars' controls, for comparison).",
    )
    p.add_argument("midi", help="input MIDI file")
    p.add_argument("--track", type=int, required=True, help="track to infill, counted from 0 as in the file")
    p.add_argument(
        "--bars", required=True, help="bars to infill, FIRST:LAST counted from 1, inclusive; several spans: 3:4,9:12"
    )
    p.add_argument("--density", help="notes per bar: one number for all bars, or one per bar (e.g. 6,8,8,4)")
    p.add_argument(
        "--polyphony",
        help=f"notes starting together, MIN-MAX in {POLYPHONY_MIN}..{POLYPHONY_MAX} (e.g. 1-3); not for drums",
    )
    p.add_argument("--duration", help=f"note values present in each bar: {','.join(DURATION_NAMES)}; not for drums")
    p.add_argument(
        "--free",
        action="store_true",
        help="give the model no bar controls at all: it chooses density, polyphony and durations",
    )
    p.add_argument("-n", type=int, default=4, help="candidates to generate (default: 4)")
    p.add_argument("-o", "--output", default="infilled", help="output folder (default: ./infilled)")
    p.add_argument(
        "--model",
        help=f"model .pth, or a .gguf from export-gguf (default: {DEFAULT_MODEL_NAME}, the shipped model; see README)",
    )
    p.add_argument(
        "--tokenizer", help="tokenizer JSON (default: MODEL_STEM.tokenizer.json, else tokenizer.json, beside the model)"
    )
    p.add_argument(
        "--state", help="a tuned style (.safetensors from tune-style or state tuning) that starts every prompt"
    )
    p.add_argument("--lora", help="a LoRA adapter (.safetensors) merged into the model")
    p.add_argument("--context", type=int, default=16, help="bars of context on each side (default: 16)")
    add_settings(p, SamplerConfig)
    p.add_argument(
        "--max-tokens", type=int, default=2000, help="stop a candidate after this many tokens (default: 2000)"
    )
    p.add_argument("--seed", type=int, help="random seed, for repeatable candidates")
    p.add_argument("--rank", action="store_true", help="order candidates by how well they follow the controls")
    p.add_argument(
        "--engine",
        default="auto",
        choices=("auto", *ENGINES),
        help="auto (default): GGML (llama.cpp) where llama-cpp-python is installed, else PyTorch; "
        "ggml uses f16 matrices, ggml-f32 matches PyTorch to float precision",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="threads (default: 1 on the GGML engine, PyTorch's default on the PyTorch engine). On 2 cores, "
        "a second thread speeds the paper-size model up 1.6x on an idle machine but slows it 2.7x while "
        "another program keeps a core busy (bench/infill.py)",
    )
    p.set_defaults(run=run_infill)

    e = sub.add_parser(
        "export-gguf",
        help="write a model as GGUF for llama.cpp (the GGML engine)",
        description="Export a .pth model to GGUF (llama.cpp's rwkv7 architecture, raw token ids). 'midi-rwkv infill "
        "--engine ggml' does this by itself and caches the result; export by hand to ship or inspect the file.",
    )
    e.add_argument("--model", help=f"model .pth (default: {DEFAULT_MODEL_NAME}, the shipped model; see README)")
    e.add_argument("--dtype", default="f16", choices=DTYPES, help="matrix precision (default: f16; vectors stay f32)")
    e.add_argument(
        "--tokenizer", help="tokenizer JSON (default: MODEL_STEM.tokenizer.json, else tokenizer.json, beside the model)"
    )
    e.add_argument("--lora", help="a LoRA adapter (.safetensors) merged into the weights before export")
    e.add_argument("-o", "--output", help="output .gguf (default: MODEL_STEM.DTYPE.gguf beside the model)")
    e.set_defaults(run=run_export)


def run_export(args) -> int:
    from midi_rwkv.inference.ggml.gguf import export_gguf
    from midi_rwkv.peft.adapters import merge_lora

    model, _, model_path = open_model(args.model, args.tokenizer)
    if args.lora:
        merge_lora(args.lora, model)
    out = Path(args.output) if args.output else model_path.with_name(f"{model_path.stem}.{args.dtype}.gguf")
    export_gguf(model, out, args.dtype)
    print(
        f"{out}: {model.config.n_layer} x {model.config.n_embd}, vocabulary {model.config.vocab_size}, {args.dtype}, "
        f"{out.stat().st_size / 2**20:.1f} MiB"
    )
    return 0
