"""``python -m midi_rwkv.train``: pretrain (or continue training) RWKV-7 on MIDI corpora."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model import PRESETS
from midi_rwkv.train.run import RunConfig, train

HELP = {
    "data": "corpus, repeatable: pop909:PATH, folder:PATH (or a bare folder), gigamidi:NAME_OR_PARQUET[::SUBSET]",
    "out": "output folder: config.json, manifest.json, checkpoints/, loss.csv, loss.png, model.pth",
    "tokenizer": "tokenizer JSON (default: the paper's 663 base tokens, no BPE)",
    "preset": f"model size: {', '.join(PRESETS)} (paper = 12 x 384, 35.1 M parameters)",
    "init": "start from these weights (.pth) instead of the paper's initialisation",
    "ctx_len": "tokens per training sequence",
    "batch_size": "sequences per step (per device)",
    "steps": "optimiser steps for the whole run (the learning-rate cosine spans them)",
    "lr_init": "peak learning rate (after warm-up)",
    "lr_final": "learning rate at the last step",
    "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW weight decay on 2-D weight matrices",
    "grad_clip": "gradient norm clipping (not with DeepSpeed)",
    "val_every": "validate every this many steps",
    "val_batches": "validation batches each time",
    "ckpt_every": "write a checkpoint every this many steps (all are kept)",
    "accelerator": "auto, cpu or gpu",
    "devices": "devices per node",
    "nodes": "nodes",
    "strategy": "auto, ddp or deepspeed_stage_2 (multi-GPU / multi-node)",
    "grad_checkpointing": "recompute activations in backward to save memory",
    "workers": "DataLoader worker processes",
    "seed": "random seed (data order, examples, initialisation, splits)",
    "cache": "folder for the prefilter cache (default: OUT/cache)",
    "examples": "JSON object of example-builder overrides, e.g. '{\"bar_infill_ratio\": 1.0}'",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m midi_rwkv.train", description=__doc__)
    for f in fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not f.default_factory else None
        if f.name == "data":
            parser.add_argument(flag, action="append", required=True, help=HELP[f.name])
        elif f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", help=HELP[f.name])
        elif f.name == "examples":
            parser.add_argument(flag, type=json.loads, default={}, help=HELP[f.name])
        else:
            kind = {"int": int, "float": float}.get(str(f.type), str)
            parser.add_argument(flag, type=kind, default=default, required=f.name == "out", help=f"{HELP[f.name]} (default: {default})")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return parser


def main(argv=None) -> int:
    args = vars(build_parser().parse_args(argv))
    resume, progress = args.pop("resume"), not args.pop("no_progress")
    try:
        train(RunConfig(**args), resume=resume, progress=progress)
    except MidiRwkvError as err:
        print(f"midi-rwkv train: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
