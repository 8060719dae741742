"""Do K candidates stay distinct when the infill follows the song's form? (Regenerate should give alternatives.)

    python bench/candidates.py                               # 24 POP909 melody prompts, K = 4, default engine
    python bench/candidates.py --prompts 48 -k 8 --structure vary

For each prompt (the evaluation's prompts: test split, 4 bars, 16 bars of context), draws K candidates with the
given structure setting and the pure model (structure off), and prints per setting: the mean number of distinct
candidates (by the notes of the span: onset on the 1/32-note grid and pitch), how many of them equal the source
window's bars (the repeat itself), the copy rate, and the mean CP of the first candidate and of the best.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.metrics.copying import bar_key, copy_rate
from midi_rwkv.metrics.music import content_preservation
from midi_rwkv.metrics.prompts import choose_prompts
from midi_rwkv.metrics.region import Region, track_notes
from midi_rwkv.structure.copying import copy_bars
from midi_rwkv.structure.features import grid_step


def span_key(score, region: Region) -> tuple:
    notes, step = track_notes(score, region.track), grid_step(region.tpq)
    return tuple(bar_key(notes, bar, step) for bar in region.bars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="pop909:../shared/data/pop909", help="corpus to draw prompts from")
    parser.add_argument("--prompts", type=int, default=24, help="prompts, one per piece")
    parser.add_argument("-k", type=int, default=4, help="candidates per prompt")
    parser.add_argument("--structure", default="follow", help="the setting measured beside 'off'")
    parser.add_argument("--engine", default="auto", help="auto | torch | ggml | ggml-f32")
    parser.add_argument("--seed", type=int, default=0, help="prompt and sampling seed")
    args = parser.parse_args()

    infiller = Infiller.load(engine=args.engine)
    prompts = choose_prompts(args.data, infiller.tokenizer, args.prompts, 4, 16, 0, "test", args.seed, False)
    corpus = open_corpus(args.data)
    rows = {args.structure: [], "off": []}
    started = time.perf_counter()
    for i, prompt in enumerate(prompts):
        piece = infiller.tokenizer.prepare(corpus.load(corpus.ids.index(prompt.piece)), prompt.piece)
        bars = (prompt.start, prompt.end)
        region = Region(prompt.track, tuple(piece.bars[bars[0]:bars[1]]), piece.original.ticks_per_quarter)
        for setting in rows:
            engine = infiller.with_structure(setting)
            candidates = engine.infill(piece, prompt.track, bars, n=args.k, seed=args.seed * 1000 + i)
            keys = [span_key(c.score, region) for c in candidates]
            plan = engine.form_plan(piece, infiller.tokenizer.encode(piece), prompt.track, bars,
                                    candidates[0].requested, False) if setting != "off" else None
            source = None
            if plan is not None and plan.source is not None:
                shifted = piece.original.copy()  # the source window's bars, as a candidate that copied them
                copy_bars(shifted, piece.original, prompt.track, piece.bars,
                          [(bars[0] + k, plan.source + k) for k in range(bars[1] - bars[0])], region.end)
                source = span_key(shifted, region)
            cps = [content_preservation(c.score, piece.original, region) for c in candidates]
            rows[setting].append({
                "distinct": len(set(keys)),
                "repeats": sum(k == source for k in keys) if source else 0,
                "copy_rate": np.nanmean([copy_rate(c.score, piece.original, region, piece.bars) for c in candidates]),
                "cp_first": cps[0], "cp_best": max(cps),
            })
    seconds = time.perf_counter() - started
    print(f"{len(prompts)} prompts, K = {args.k}, engine {infiller.generator.engine.name}, {seconds:.0f} s in all\n")
    print("| structure | distinct of K (mean) | candidates equal to the source window (mean, most) | copy rate | "
          "CP of the first | CP of the best |")
    print("|---|---:|---:|---:|---:|---:|")
    for setting, values in rows.items():
        mean = {key: np.nanmean([v[key] for v in values]) for key in values[0]}
        most = max(v["repeats"] for v in values)
        print(f"| {setting} | {mean['distinct']:.2f} | {mean['repeats']:.2f}, {most} | {mean['copy_rate']:.2f} | "
              f"{mean['cp_first']:.3f} | {mean['cp_best']:.3f} |")


if __name__ == "__main__":
    main()
