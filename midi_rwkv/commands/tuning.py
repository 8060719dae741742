"""``midi-rwkv tune-style``: learn a style (an initial state) from a composer's own pieces."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.data.prefilter import check_piece
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.commands import DEFAULT_MODEL
from midi_rwkv.model import load_checkpoint
from midi_rwkv.model.checkpoint import default_tokenizer
from midi_rwkv.peft.adapters import StateAdapter, save_adapter
from midi_rwkv.tokenizer import InfillTokenizer


def run_tune_style(args) -> int:
    from midi_rwkv.peft.tune import evaluate, example_loader, tune  # imports Lightning (~3 s): only when tuning

    model_path = Path(args.model) if args.model else DEFAULT_MODEL
    if not model_path.is_file():
        raise MidiRwkvError(f"no model at {model_path}: pass --model")
    tokenizer = InfillTokenizer.load(args.tokenizer or default_tokenizer(model_path))
    model = load_checkpoint(model_path, vocab_size=tokenizer.vocab_size).float()
    corpus = FolderCorpus(args.pieces)
    usable = []
    for i in range(len(corpus)):
        reason = check_piece(corpus, i, tokenizer, min_bars=1, min_notes=0)
        if reason:
            print(f"skipping {corpus.ids[i]}: {reason}")
        else:
            usable.append(i)
    if not usable:
        raise MidiRwkvError(f"no usable MIDI file in {args.pieces}")
    torch.manual_seed(args.seed)
    adapter = StateAdapter(model)
    measure = example_loader(corpus, usable, tokenizer, args.ctx_len, args.batch_size, 4, args.seed + 1)
    before = evaluate(model, None, measure)
    history = tune(model, adapter, example_loader(corpus, usable, tokenizer, args.ctx_len, args.batch_size, args.steps, args.seed), args.lr, args.lr / 10)
    after = evaluate(model, adapter, measure)
    out = save_adapter(adapter, model, args.output, extra={"pieces": [corpus.ids[i] for i in usable], "loss_before": before, "loss_after": after})
    print(json.dumps({"pieces": len(usable), "loss_on_your_pieces_before": round(before, 3), "after": round(after, 3), **history}))
    print(f"wrote {out}; use it with: midi-rwkv infill SONG.mid --state {out} ...")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "tune-style",
        help="learn a style preset (a tuned initial state) from a few of your MIDI files",
        description="State tuning on a handful of pieces (5-20): only the model's initial state is trained, so the style "
        "file is small and costs nothing at generation time.",
    )
    p.add_argument("pieces", help="folder with your MIDI files")
    p.add_argument("-o", "--output", required=True, help="style file to write (.safetensors, plus a .json beside it)")
    p.add_argument("--model", help=f"base model .pth (default: {DEFAULT_MODEL.name} in the repository)")
    p.add_argument("--tokenizer", help="tokenizer JSON (default: MODEL_STEM.tokenizer.json, else tokenizer.json, beside the model)")
    p.add_argument("--steps", type=int, default=100, help="optimiser steps (default: 100)")
    p.add_argument("--lr", type=float, default=5e-2, help="learning rate, cosine to lr/10 (default: 5e-2)")
    p.add_argument("--batch-size", type=int, default=2, help="sequences per step (default: 2)")
    p.add_argument("--ctx-len", type=int, default=512, help="tokens per training sequence (default: 512)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(run=run_tune_style)
