"""The training mix against what the evaluation asks: which examples the builder draws, and each model's loss on
validation examples of each kind.

    python bench/mix.py                                                  # the mix of runs/compiled's training split
    python bench/mix.py --model midi_rwkv.pth --model runs/a/model.pth   # and each model's loss per kind
    python bench/mix.py --examples '{"span_ratio": [0.01, 0.1]}'         # the mix of other builder settings
    python bench/mix.py --model midi_rwkv.pth --layout file-order        # a model's loss in another layout

The evaluation asks for 4 bars of one track with up to 16 bars of context on each side (POP909's melody and
accompaniment, Groove's drums, a random track of a multi-track piece). The mix table counts, over training
examples drawn as training draws them, the kinds, the span lengths, how often an example looks like an evaluation
prompt (a 3-5 bar span with 8 or more bars of context on each side), and how often the infilled track is a drum
track, alone or in an arrangement. The loss table gives each model's mean cross-entropy (nats per learned token),
over the whole sequence and over the section only (the bars infilling generates), on fixed validation examples of
four kinds: the training mix, 4-bar infills, whole-track infills, and 4-bar drum
infills. The same examples for every model, each in the layout it was trained with (``--layout`` overrides it).
Nothing is asserted: record the tables with the CPU they ran on.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from dataclasses import replace

import torch

FOUR_BARS = {"bar_infill_ratio": 1.0, "span_choices": (4,), "span_ratio": (0.001, 0.001), "free_ratio": 0.0}
KINDS = {  # name -> (builder overrides, the example kind it must be (None: any), drum infills only)
    "training mix": ({}, None, False),
    "4-bar infill": (FOUR_BARS, "bar", False),
    "track infill": ({"bar_infill_ratio": 0.0}, "track", False),
    "4-bar drums": (FOUR_BARS, "bar", True),
}


def described(corpus, drawer, index: int, seed: int) -> dict | None:
    """What one drawn example is: kind, span and context in bars, drum track or not, tracks in it, its source."""
    seq = drawer.draw(index, seed)
    if seq is None:
        return None
    shard, piece = corpus.locate(index)
    track_start = corpus.meta["token_ids"]["Track_Start"]
    return {
        "kind": seq.kind,
        "span": seq.bars[1] - seq.bars[0],
        "left": seq.token_bars[0] - seq.window[0],
        "right": seq.window[1] - seq.token_bars[1],
        "drum": seq.track in shard.piece_facts(piece)["drums"],
        "tracks": sum(1 for t in seq.ids if t == track_start),
        "source": shard.folder.name,
        "seq": seq,
    }


def mix_table(rows: list[dict]) -> str:
    n = len(rows)
    bar = [r for r in rows if r["kind"] == "bar"]
    spans = Counter(
        "1" if r["span"] == 1 else "2" if r["span"] == 2 else "3-5" if r["span"] <= 5 else "6-8" if r["span"] <= 8
        else "9-16" if r["span"] <= 16 else "17+" for r in bar
    )
    like_eval = [r for r in bar if 3 <= r["span"] <= 5 and min(r["left"], r["right"]) >= 8]
    drums = [r for r in rows if r["drum"]]
    lines = [f"{n} training examples drawn as training draws them\n", "| measure | share |", "|---|---:|",
             f"| bar infill | {len(bar) / n:.1%} |", f"| track infill | {1 - len(bar) / n:.1%} |"]
    for key in ("1", "2", "3-5", "6-8", "9-16", "17+"):
        lines.append(f"| bar infill spanning {key} bars | {spans[key] / n:.1%} |")
    lines += [
        f"| like an evaluation prompt (3-5 bars, 8+ bars of context each side) | {len(like_eval) / n:.1%} |",
        f"| infills a drum track | {len(drums) / n:.1%} |",
        f"| infills a drum track among other tracks | {sum(r['tracks'] >= 2 for r in drums) / n:.1%} |",
    ]
    by_source = Counter(r["source"] for r in rows)
    lines.append("\n| source | share of examples | of which like an evaluation prompt |\n|---|---:|---:|")
    for source, count in by_source.most_common():
        like = sum(r["source"] == source for r in like_eval)
        lines.append(f"| {source} | {count / n:.1%} | {like / count:.1%} |")
    return "\n".join(lines)


def has_drums(corpus, index: int) -> bool:
    shard, piece = corpus.locate(index)
    return bool(shard.piece_facts(piece)["drums"])


def validation_examples(corpus, config, count: int, seed: int) -> dict[str, list]:
    """``count`` fixed validation sequences of each kind (drum kinds: from pieces that have a drum track)."""
    from midi_rwkv.data.compiled import CompiledExamples

    pieces = corpus.split("validation")
    out = {}
    with_drums = [i for i in pieces if has_drums(corpus, i)]
    for name, (overrides, kind, drums_only) in KINDS.items():
        drawer = CompiledExamples(corpus, replace(config, **overrides))
        candidates = with_drums if drums_only else pieces
        rng, found, tries = random.Random(seed), [], 0
        while candidates and len(found) < count and tries < 50 * count:
            tries += 1
            row = described(corpus, drawer, rng.choice(candidates), rng.randrange(2**31))
            if row is not None and kind in (None, row["kind"]) and (row["drum"] or not drums_only):
                found.append(row["seq"])
        out[name] = found
    return out


@torch.no_grad()
def mean_losses(model, sequences, unlearned: frozenset[int]) -> tuple[float, float]:
    """(mean loss per learned token of the whole sequence, of the section only: what infilling generates)."""
    import torch.nn.functional as F

    from midi_rwkv.data.dataset import IGNORE, make_labels

    totals, counts = [0.0, 0.0], [0, 0]
    for seq in sequences:
        inputs, labels = make_labels(seq.ids, unlearned)
        target = torch.tensor(labels)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, _ = model(torch.tensor([inputs]))
        losses = F.cross_entropy(logits[0].float(), target, ignore_index=IGNORE, reduction="none")  # 0 where ignored
        learned = target != IGNORE
        section = learned.clone()
        section[: seq.prompt_len - 1] = False  # label i is token i + 1: the section starts at prompt_len
        for k, mask in enumerate((learned, section)):
            totals[k] += float(losses[mask].sum())
            counts[k] += int(mask.sum())
    return totals[0] / max(counts[0], 1), totals[1] / max(counts[1], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/compiled", help="a compiled corpus (midi-rwkv compile-corpus)")
    parser.add_argument("--examples", default="{}", help="example-builder overrides, JSON (as training's --examples)")
    parser.add_argument("--draws", type=int, default=2000, help="training examples drawn for the mix table")
    parser.add_argument("--model", action="append", default=[], help="a model to measure, repeatable")
    parser.add_argument("--per-kind", type=int, default=150, help="validation examples of each kind")
    parser.add_argument("--ctx-len", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=("model", "file-order", "target-last"), default="model",
                        help="the sequence layout of the validation examples (model: each model's own)")
    args = parser.parse_args()

    from midi_rwkv.data.compiled import CompiledCorpus, CompiledExamples
    from midi_rwkv.model.checkpoint import load_checkpoint, model_layout
    from midi_rwkv.tokenizer.examples import ExampleConfig

    torch.set_num_threads(1)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    corpus = CompiledCorpus(args.data)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.examples).items()}
    config = ExampleConfig(max_len=args.ctx_len + 1, **overrides)
    drawer, rng, train = CompiledExamples(corpus, config), random.Random(args.seed), corpus.split("train")
    rows = [described(corpus, drawer, rng.choice(train), rng.randrange(2**31)) for _ in range(args.draws)]
    print(f"{cpu}; {args.data}, builder overrides {overrides or 'none'}\n")
    print(mix_table([r for r in rows if r is not None]))
    if not args.model:
        return
    sets = {}  # by layout: the same draws (a layout only reorders tracks), so every model reads the same music
    print("\nValidation loss (nats per learned token) by kind of example, whole sequence / section only (the bars "
          "infilling generates); the same examples for every model\n")
    for path in args.model:
        layout = model_layout(path) if args.layout == "model" else args.layout
        if layout not in sets:
            config = ExampleConfig(max_len=args.ctx_len + 1, layout=layout)
            sets[layout] = validation_examples(corpus, config, args.per_kind, args.seed + 1)
        if path == args.model[0]:  # a layout reorders tracks only: every layout has the same counts
            print("| model | layout | " + " | ".join(f"{k} ({len(v)})" for k, v in sets[layout].items()) + " |")
            print("|---|---|" + "---:|" * len(sets[layout]))
        model = load_checkpoint(path, vocab_size=corpus.vocab_size).eval()
        losses = [mean_losses(model, seqs, corpus.unlearned_ids()) for seqs in sets[layout].values()]
        print(f"| {path} | {layout} | " + " | ".join(f"{a:.3f} / {b:.3f}" for a, b in losses) + " |", flush=True)


if __name__ == "__main__":
    main()
