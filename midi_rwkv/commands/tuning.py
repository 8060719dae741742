"""``midi-rwkv tune`` (state tuning or LoRA on a corpus), ``tune-style`` (a composer's short form)
and ``merge-lora``.
"""

from __future__ import annotations

import json
from pathlib import Path

from midi_rwkv.commands.options import add_settings, settings_from_args
from midi_rwkv.peft.tune_config import TuneConfig

# tune-style's options: the same settings (and defaults) as tune's, less what a folder of one's own pieces decides
_STYLE_SKIPS = ("data", "out", "method", "rank", "alpha", "split", "limit", "split_file")
_TUNE_SKIPS = ("hold_out",)  # tune holds out whole songs of its corpus split


def run_tune(args) -> int:
    from midi_rwkv.peft.finetune import run  # imports Lightning (~3 s): only when tuning

    run(settings_from_args(TuneConfig, args), progress=not args.no_progress)
    return 0


def run_tune_style(args) -> int:
    from midi_rwkv.peft.finetune import tune_style

    output = Path(args.output)
    config = settings_from_args(TuneConfig, args, data=f"folder:{args.pieces}", out=str(output.parent), method="state")
    path, summary, line = tune_style(config, args.pieces, output)
    print(json.dumps(summary))
    print(line)
    print(f"wrote {path}; use it with: midi-rwkv infill SONG.mid --state {path} ...")
    return 0


def run_merge_lora(args) -> int:
    from midi_rwkv.peft.finetune import merge_lora_checkpoint

    print(f"wrote {merge_lora_checkpoint(args.model, args.adapter, args.output)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="state tuning or LoRA on a frozen model, with a held-out loss before and after",
        description="Split a corpus by piece, measure the test loss, train an adapter (the initial WKV state, or "
        "LoRA) until the validation loss stops falling, keeping the best, measure again, say whether it generalised, "
        "and write the adapter, split.json and report.json to --out. scripts/run-state-tuning.sh, "
        "scripts/run-lora.sh and scripts/personalisation.sh are the recipes around it.",
    )
    add_settings(p, TuneConfig, skip=_TUNE_SKIPS)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.set_defaults(run=run_tune)

    s = sub.add_parser(
        "tune-style",
        help="learn a style preset (a tuned initial state) from a few of your MIDI files",
        description="State tuning on a handful of pieces (5-20), with tune's settings and defaults: only the model's "
        "initial state is trained, so the style file is small and costs nothing at generation time. One piece in five "
        "(at least one; of a single piece, its last bars) is held out: its loss is reported before and after, "
        "training stops when it stops falling (keeping the best state), and one line says whether the style "
        "generalised.",
    )
    s.add_argument("pieces", help="folder with your MIDI files")
    s.add_argument("-o", "--output", required=True, help="style file to write (.safetensors, plus a .json beside it)")
    add_settings(s, TuneConfig, skip=_STYLE_SKIPS)
    s.set_defaults(run=run_tune_style)

    m = sub.add_parser(
        "merge-lora",
        help="write a model with a LoRA adapter folded into its weights",
        description="Write MODEL with the LoRA adapter merged in, as a bf16 .pth with its sidecar and tokenizer.",
    )
    m.add_argument("adapter", help="LoRA adapter (.safetensors from 'midi-rwkv tune --method lora')")
    m.add_argument("-o", "--output", required=True, help="merged model .pth to write")
    m.add_argument("--model", help="base model .pth (default: the shipped midi_rwkv.pth)")
    m.set_defaults(run=run_merge_lora)
