"""``midi-rwkv prompt`` (show an infill prompt), ``train-tokenizer`` and ``check-data``."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from midi_rwkv.commands.options import parse_bars
from midi_rwkv.data.corpora import midi_files
from midi_rwkv.data.vocabulary import train_from_corpora
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.model.checkpoint import CheckpointError, model_layout, resolve_model
from midi_rwkv.tokenizer.examples import ExampleBuilder, ExampleConfig
from midi_rwkv.tokenizer.infill_tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.score import load_score
from midi_rwkv.tokenizer.sequences import LAYOUTS
from midi_rwkv.train.train_config import TrainConfig

_LINE_BREAKS = ("Track_Start", "FillBar_Start", "FillBar_End", "Infill_Track", "Bar_None")


def _load(path: str | None) -> InfillTokenizer:
    return InfillTokenizer.load(path) if path else InfillTokenizer()


def format_tokens(tokens: list[str]) -> str:
    """Tokens on lines: a new line at each track, bar and section marker."""
    lines, current = [], []
    for token in tokens:
        if token.startswith(_LINE_BREAKS) and current:
            lines.append(" ".join(current))
            current = []
        current.append(token)
    lines.append(" ".join(current))
    return "\n".join(lines)


def _default_layout() -> str:
    """The shipped model's layout; without one, the layout new models train in."""
    try:
        return model_layout(resolve_model())
    except CheckpointError:
        return TrainConfig.layout


def run_prompt(args) -> int:
    tok = _load(args.tokenizer)
    piece = tok.prepare(args.midi)
    start, end = parse_bars(args.bars)
    layout = args.layout or _default_layout()
    seq = tok.bar_infill(piece, args.track, (start, end), context_bars=args.context, max_len=args.max_len,
                         layout=layout)
    shown = seq.ids if args.with_target else seq.prompt
    print(format_tokens(tok.token_strings(shown)))
    a, b = seq.window
    print(
        f"\n# {piece.name}: track {args.track}, bars {start + 1}-{end} of {piece.num_bars} "
        f"({seq.token_bars[1] - seq.token_bars[0]} tokenizer bars), context bars "
        f"{piece.first_token_bar.index(a) + 1}-{piece.first_token_bar.index(b)}; prompt {seq.prompt_len} tokens, "
        f"target {len(seq.target)} tokens, vocabulary {tok.vocab_size}, layout {layout}"
        + (f"; dropped notes: {piece.dropped_notes}" if piece.dropped_notes else "")
    )
    return 0


def run_train_tokenizer(args) -> int:
    out = Path(args.output)
    sweep = [int(size) for size in args.sweep.split(",")] if args.sweep else []
    tok, stats = train_from_corpora(
        args.data, vocab_size=args.vocab_size, limit=args.limit, split=args.split, sweep=sweep
    )
    stats["sources"] = [str(p) for p in args.data]
    tok.save(out, metadata={"bpe": stats})
    print(json.dumps({k: v for k, v in stats.items() if k != "sweep"}, indent=2))
    if sweep:
        print("\n| vocabulary | tokens per piece | compression |\n|---:|---:|---:|")
        for row in stats["sweep"]:
            print(f"| {row['vocab_size']:,} | {row['tokens_per_file']:,.1f} | {row['compression']:.2f}x |")
    print(f"wrote {out}")
    return 0


def check_compiled(folder: str, max_len: int, seed: int, limit: int | None) -> dict:
    """The report of ``check-data compiled:FOLDER``: what each shard holds and skipped, and one example per piece."""
    from midi_rwkv.data.compiled import CompiledCorpus, CompiledExamples

    corpus = CompiledCorpus(folder)
    drawer = CompiledExamples(corpus, ExampleConfig(max_len=max_len))
    rng = random.Random(seed)
    kinds, lengths = Counter(), []
    start = time.perf_counter()
    for index in tqdm(range(len(corpus))[:limit], desc="drawing", unit="piece"):
        seq = drawer(index, rng)
        kinds[seq.kind if seq else "no example"] += 1
        if seq:
            lengths.append(len(seq.ids))
    shards = {}
    for shard in corpus.shards:
        skipped = Counter(reason.split(":")[0] for reason in shard.meta["skipped"].values())
        splits = Counter(p["split"] for p in shard.meta["pieces"])
        shards[shard.meta["spec"]] = {"pieces": dict(splits), "skipped": dict(skipped),
                                      "ids_all_shifts": shard.meta["tokens"]}
    return {
        "corpus": corpus.name,
        "shards": shards,
        "tokens_per_split": corpus.tokens,
        "examples": dict(kinds),
        "example_tokens_mean": round(sum(lengths) / max(1, len(lengths)), 1),
        "example_tokens_max": max(lengths, default=0),
        "vocab_size": corpus.vocab_size,
        "seconds": round(time.perf_counter() - start, 1),
    }


def run_check_data(args) -> int:
    if all(d.startswith("compiled:") for d in args.data) and len(args.data) == 1:
        report = check_compiled(args.data[0].removeprefix("compiled:"), args.max_len, args.seed, args.limit)
        print(json.dumps(report, indent=2))
        return 0
    tok = _load(args.tokenizer)
    files = midi_files(*args.data)[: args.limit]
    if not files:
        raise MidiRwkvError(f"no MIDI files under {', '.join(args.data)}")
    builder = ExampleBuilder(tok, ExampleConfig(max_len=args.max_len))
    rng = random.Random(args.seed)
    skipped, kinds, dropped = Counter(), Counter(), Counter()
    lengths, base_tokens, model_tokens = [], 0, 0
    start = time.perf_counter()
    for path in tqdm(files, desc="checking", unit="file"):
        try:
            score = load_score(path)
            enc = tok.encode(tok.prepare(score, str(path)))
        except MidiRwkvError as err:
            skipped[type(err).__name__] += 1
            continue
        dropped.update(enc.piece.dropped_notes)
        base_tokens += enc.base_length()
        model_tokens += enc.length()
        seq = builder(score, rng)
        if seq is None:
            skipped["no example"] += 1
            continue
        kinds[seq.kind] += 1
        lengths.append(len(seq.ids))
    tokenized = max(1, len(files) - sum(v for k, v in skipped.items() if k != "no example"))
    report = {
        "files": len(files),
        "skipped": dict(skipped),
        "dropped_notes": dict(dropped),
        "examples": dict(kinds),
        "example_tokens_mean": round(sum(lengths) / max(1, len(lengths)), 1),
        "example_tokens_max": max(lengths, default=0),
        "base_tokens_per_file": round(base_tokens / tokenized, 1),
        "tokens_per_file": round(model_tokens / tokenized, 1),
        "vocab_size": tok.vocab_size,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "prompt",
        help="show the infill prompt for a track and bars of a MIDI file",
        description="Tokenize a MIDI file and print the bar-infill prompt the model would read.",
    )
    p.add_argument("midi", help="input MIDI file")
    p.add_argument("--track", type=int, required=True, help="track to infill, counted from 0 as in the file")
    p.add_argument("--bars", required=True, help="bars to infill, FIRST:LAST counted from 1, inclusive (e.g. 9:12)")
    p.add_argument("--context", type=int, default=16, help="bars of context kept on each side (default: 16)")
    p.add_argument("--max-len", type=int, default=2048, help="maximum sequence length in tokens (default: 2048)")
    p.add_argument("--tokenizer", help="tokenizer JSON (default: the paper's base vocabulary, no BPE)")
    p.add_argument("--with-target", action="store_true", help="also print the original bars (the training target)")
    p.add_argument("--layout", choices=LAYOUTS,
                   help="where the infilled track goes, as the model that reads it was trained (default: the "
                   "shipped model's layout)")
    p.set_defaults(run=run_prompt)

    p = sub.add_parser(
        "train-tokenizer",
        help="learn BPE on folders of MIDI files",
        description="Learn a BPE vocabulary over bar headers and bodies of every piece in the given corpora.",
    )
    p.add_argument(
        "data",
        nargs="+",
        help="corpora: folders (searched recursively), pop909:PATH (annotated metre), gigamidi:NAME_OR_PARQUET",
    )
    p.add_argument("-o", "--output", required=True, help="tokenizer JSON to write (atomically)")
    p.add_argument("--vocab-size", type=int, default=16000, help="final vocabulary size (default: 16000)")
    p.add_argument("--limit", type=int, help="use at most this many pieces of each corpus")
    p.add_argument(
        "--split",
        choices=["train", "validation", "test"],
        help="learn only from the pieces training puts in this split (e.g. train: no test piece shapes the vocabulary)",
    )
    p.add_argument(
        "--sweep",
        metavar="SIZES",
        help="also train these sizes (e.g. 2000,4000,8000) and print tokens per piece for each",
    )
    p.set_defaults(run=run_train_tokenizer)

    p = sub.add_parser(
        "check-data",
        help="run the tokenizer and example builder over MIDI folders (or a compiled corpus) and report counts",
        description="Tokenize every file, build one random training example each, and report what was skipped and why. "
        "With compiled:FOLDER, report what the compiled corpus holds per shard and split, and draw one example per "
        "piece from it.",
    )
    p.add_argument("data", nargs="+", help="MIDI files or folders (searched recursively), or one compiled:FOLDER")
    p.add_argument("--tokenizer", help="tokenizer JSON (default: the paper's base vocabulary, no BPE)")
    p.add_argument("--max-len", type=int, default=2048, help="maximum example length (default: 2048)")
    p.add_argument("--limit", type=int, help="check at most this many files")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(run=run_check_data)
