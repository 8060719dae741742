"""``midi-rwkv compile-corpus``: tokenize sources once into a compiled corpus that training reads as arrays."""

from __future__ import annotations

from pathlib import Path


def run_compile(args) -> int:
    from midi_rwkv.data.compile import compile_source
    from midi_rwkv.data.compiled import CompiledCorpus

    for spec in args.data:
        compile_source(spec, args.tokenizer, args.out, workers=args.workers, seed=args.seed, progress=not args.quiet,
                       force=args.force, max_shift=args.max_shift)
    corpus = CompiledCorpus(args.out)
    print(f"{args.out}: {len(corpus)} pieces in {len(corpus.shards)} shards; model tokens per split "
          + ", ".join(f"{k} {v:,}" for k, v in corpus.tokens.items()))
    print(f"train with: midi-rwkv train --data compiled:{Path(args.out)}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "compile-corpus",
        help="tokenize corpora once into memory-mapped arrays (a compiled corpus) for fast training",
        description="Prefilter, tokenize and encode every piece of each source once (with all pitch shifts of "
        "-6..6 semitones and the per-bar statistics the controls are made of) into OUT/<source>/. A source whose "
        "pieces and tokenizer have not changed is kept. Train from it with --data compiled:OUT; it needs neither "
        "MidiTok nor symusic there.",
    )
    p.add_argument("data", nargs="+", metavar="CORPUS",
                   help="sources: pop909:PATH, pop909+versions:PATH, folder:PATH, gigamidi:NAME_OR_PARQUET[::SUBSET]")
    p.add_argument("--tokenizer", required=True, help="the tokenizer JSON (BPE-trained) to compile with")
    p.add_argument("--out", default="runs/compiled", help="folder of shards (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="tokenizing processes (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="split seed, as training's --seed (default: %(default)s)")
    p.add_argument("--max-shift", type=int, default=6,
                   help="pitch shifts compiled, -N..N semitones (default: %(default)s, the example builder's; 0 makes "
                   "a shard 13 times smaller, for training with no pitch augmentation)")
    p.add_argument("--force", action="store_true", help="compile again even when a shard is up to date")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=run_compile)
