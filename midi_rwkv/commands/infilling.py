"""``midi-rwkv infill`` (new bars for a track of a MIDI file) and ``export-gguf`` (a model for the GGML engine)."""

from __future__ import annotations

from pathlib import Path

from midi_rwkv.commands.fills import FILL_HELP, fills_from_args, fills_label
from midi_rwkv.commands.options import add_settings, given_settings, settings_from_args
from midi_rwkv.inference.ggml.gguf import DTYPES
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.requests import BarFill, InfillRequest
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.io import atomic_write
from midi_rwkv.model.checkpoint import DEFAULT_MODEL_NAME, model_layout, open_model
from midi_rwkv.tokenizer.controls import DURATION_NAMES, POLYPHONY_MAX, POLYPHONY_MIN, describe_controls


def _describe(controls) -> str:
    return " ".join(describe_controls(c) for c in controls)


ROLL_CONTEXT = 4  # bars drawn on each side of the written bars


def _piano_roll(piece, fills, paths, results, path: Path) -> Path:
    """The original and every candidate, zoomed to the written bars and :data:`ROLL_CONTEXT` bars around them (a
    whole or new track: the whole song)."""
    from midi_rwkv.metrics.pianoroll import render  # matplotlib: only when asked for

    spans = [f.bars for f in fills if isinstance(f, BarFill) and f.track < len(piece.original.tracks)]
    shade = window = None
    if spans and len(spans) == len(fills):
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        shade = (piece.bars[spans[0][0]].start, piece.bars[spans[0][1] - 1].end)
        window = (piece.bars[max(0, first - ROLL_CONTEXT)].start,
                  piece.bars[min(piece.num_bars, last + ROLL_CONTEXT) - 1].end)
    title = "; ".join(f.describe() for f in fills)
    return render(piece.original, [(p.stem.rsplit("_", 1)[-1], c.score) for p, c in zip(paths, results)], path,
                  shade, title, window)


def run_infill(args) -> int:
    overrides = {"structure": "vary"} if args.vary else {}
    # no sampling option: each fill takes its kind's default (whole and new tracks: TRACK_SAMPLER)
    sampler = settings_from_args(SamplerConfig, args) if given_settings(SamplerConfig, args) else None
    request = InfillRequest(fills_from_args(args), settings_from_args(InfillOptions, args, **overrides), sampler)
    options = request.options
    infiller = Infiller.open(options, args.model, args.tokenizer, args.state, args.lora)
    print(f"engine: {infiller.generator.engine.name}")
    out = Path(args.output)
    source = Path(args.midi)
    piece = infiller.tokenizer.prepare(source)
    fills = list(request.fills)
    infiller.check_fills(piece, fills)  # every track and span, before generating anything
    results = infiller.write(piece, request)
    label = fills_label(fills)
    paths = [out / f"{source.stem}_{label}_{i}.mid" for i in range(1, len(results) + 1)]
    for path, c in zip(paths, results):  # every file first: a closed pipe on stdout then costs only the report
        atomic_write(path, lambda tmp, score=c.score: score.dump_midi(tmp))
    if args.roll:
        roll = _piano_roll(piece, fills, paths, results, out / f"{source.stem}_{label}.png")
        print(f"piano roll: {roll}")
    for path, c in zip(paths, results):
        steps = c.steps
        notes = sum(s.report.notes_added for s in steps)
        sampled = sum(s.generation.sampled for s in steps)
        seconds = sum(s.generation.seconds for s in steps)
        print(f"{path}: {notes} notes, {sampled} tokens sampled in {seconds:.2f} s, control error {c.control_error:g}, "
              f"mean log-prob {c.mean_logprob:.2f}")
        if note := empty_track_note(c.score):
            print(f"  {note}")
        if c.form:
            print(f"  {c.form}")
        for s in steps:
            g = s.generation
            if len(steps) > 1:
                print(f"  {s.fill.describe()}: {s.report.notes_added} notes")
            if g.stopped != "done":
                print(f"  (stopped at --max-tokens: {s.report.bars_generated}/{s.report.bars_expected} bars)")
            print(f"  requested {_describe(s.requested)}")
            print(f"  realised  {_describe(s.realised)}")
    return 0


def empty_track_note(score) -> str | None:
    """A warning when a written track came out empty. The file keeps the empty track (name, program), but symusic,
    which reads MIDI here, drops tracks without notes: read back, the tracks after it move up one (a later
    --track T on that file names another track)."""
    empty = [i for i, track in enumerate(score.tracks) if not track.notes]
    if not empty:
        return None
    which = f"track {empty[0]}" if len(empty) == 1 else "tracks " + ", ".join(str(i) for i in empty)
    return (f"({which} came out empty: the file keeps it, but read back by midi-rwkv (symusic drops tracks "
            "without notes) the tracks after it move up one)")


def register(sub) -> None:
    p = sub.add_parser(
        "infill",
        help="generate new bars, a whole track again, or a new track, for a MIDI file",
        description="Write candidates in which the requested bars of a track (--track T --bars A:B), a whole track "
        "(--track T), or a new track (--new-track PROGRAM) are new; everything else is kept as it is. --fill asks for "
        "several of these at once. Without control options, each bar's controls are those of the original bar (a "
        "whole track: its own track controls; a new track: those typical of the others); with --free the model gets "
        "no bar controls and chooses (the printed 'requested' line then shows the original bars' controls).",
    )
    p.add_argument("midi", help="input MIDI file")
    p.add_argument("--track", type=int, help="track to write, counted from 0 as in the file")
    p.add_argument(
        "--bars", help="bars to infill, FIRST:LAST counted from 1, inclusive; several spans: 3:4,9:12 (default: the "
        "whole track)"
    )
    p.add_argument("--new-track", type=int, nargs="?", const=0, metavar="PROGRAM",
                   help="add a track with this General MIDI program (0-127) under the existing ones")
    p.add_argument("--drums", action="store_true", help="with --new-track: the new track is drums")
    p.add_argument("--fill", action="append", metavar="SPEC", help=FILL_HELP)
    p.add_argument(
        "--density", help="notes per bar: one number for all bars, or one per bar (e.g. 6,8,8,4); for a whole or "
        "new track, N or LOW,HIGH"
    )
    p.add_argument(
        "--polyphony",
        help=f"notes starting together, MIN-MAX in {POLYPHONY_MIN}..{POLYPHONY_MAX} (e.g. 1-3); not for drums",
    )
    p.add_argument("--duration", help=f"note values present in each bar: {','.join(DURATION_NAMES)}; not for drums")
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
    add_settings(p, InfillOptions)
    add_settings(p, SamplerConfig)
    p.add_argument("--vary", action="store_true", help="a new idea rather than a repeat: the same as --structure vary")
    p.add_argument("--roll", action="store_true", help="also draw the original and every candidate as piano rolls "
                   "(a PNG beside the files; what the model wrote is outlined)")
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
    export_gguf(model, out, args.dtype, model_layout(model_path))
    print(
        f"{out}: {model.config.n_layer} x {model.config.n_embd}, vocabulary {model.config.vocab_size}, {args.dtype}, "
        f"{out.stat().st_size / 2**20:.1f} MiB"
    )
    return 0
