"""``python -m midi_rwkv.peft``: state tuning or LoRA on a frozen base model."""

from __future__ import annotations

import argparse
import sys

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.peft.run import TuneConfig, merge_lora_checkpoint, run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m midi_rwkv.peft", description=__doc__)
    p.add_argument("--base", required=True, help="base model .pth (tokenizer.json beside it)")
    p.add_argument("--data", help="corpus: pop909:PATH, folder:PATH, ... (required unless --merge-lora)")
    p.add_argument("--out", required=True, help="output folder: adapter, split.json, report.json (with --merge-lora: the merged .pth)")
    p.add_argument("--merge-lora", metavar="ADAPTER", help="instead of tuning: write --base with this LoRA merged in to --out")
    p.add_argument("--method", choices=["state", "lora"], default="state", help="what to train (default: state)")
    p.add_argument("--rank", type=int, default=4, help="LoRA rank (default: 4)")
    p.add_argument("--alpha", type=float, default=4.0, help="LoRA alpha (default: 4)")
    p.add_argument("--lr", type=float, help="learning rate (default: 5e-2 for state, 1e-3 for LoRA), cosine to lr/10")
    p.add_argument("--steps", type=int, default=200, help="optimiser steps (default: 200)")
    p.add_argument("--batch-size", type=int, default=4, help="sequences per step (default: 4)")
    p.add_argument("--ctx-len", type=int, default=1024, help="tokens per sequence (default: 1024)")
    p.add_argument("--eval-batches", type=int, default=8, help="test batches for the loss before/after (default: 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, examples and initialisation (default: 0)")
    p.add_argument("--tokenizer", help="tokenizer JSON (default: BASE_STEM.tokenizer.json, else tokenizer.json, beside --base)")
    p.add_argument("--limit", type=int, help="use at most this many pieces")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = vars(p.parse_args(argv))
    progress = not args.pop("no_progress")
    merge = args.pop("merge_lora")
    try:
        if merge:
            print(f"wrote {merge_lora_checkpoint(args['base'], merge, args['out'])}")
            return 0
        if not args["data"]:
            p.error("--data is required unless --merge-lora is given")
        run(TuneConfig(**args), progress)
    except MidiRwkvError as err:
        print(f"midi-rwkv peft: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
