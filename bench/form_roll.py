"""Look at what following the form writes: piano rolls of one span, the original against the model alone and the
model following the song's form, zoomed on the span and its neighbours (the source window's bars drawn beside it).

    python bench/form_roll.py ../shared/data/pop909/001/001.mid --track 0 --bars 21:24 -o docs/form-roll.png
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from midi_rwkv.inference.infiller import Infiller  # noqa: E402
from midi_rwkv.io import atomic_write  # noqa: E402


def lane(ax, score, track, start, end, piece, colour, label):
    for index, part in enumerate(score.tracks):
        alpha, col = (1.0, colour) if index == track else (0.25, "grey")
        for note in part.notes:
            if start <= note.time < end:
                ax.plot([note.time, note.time + note.duration], [note.pitch] * 2, color=col, alpha=alpha, lw=2.5)
    for bar in piece.bars:
        if start <= bar.start <= end:
            ax.axvline(bar.start, color="#dddddd", lw=0.6, zorder=0)
    ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("midi")
    parser.add_argument("--track", type=int, required=True)
    parser.add_argument("--bars", required=True, help="FIRST:LAST, counted from 1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", default="form-roll.png")
    args = parser.parse_args()
    first, last = (int(x) for x in args.bars.split(":"))
    bars = (first - 1, last)
    infiller = Infiller.load(engine="auto")
    piece = infiller.tokenizer.prepare(args.midi)
    (follow,) = infiller.with_structure("follow").infill(piece, args.track, bars, n=1, seed=args.seed)
    (alone,) = infiller.with_structure("off").infill(piece, args.track, bars, n=1, seed=args.seed)
    plan = infiller.form_plan(piece, infiller.tokenizer.encode(piece), args.track, bars, follow.requested, False)
    n = bars[1] - bars[0]
    start, end = piece.bars[max(0, bars[0] - 2)].start, piece.bars[min(piece.num_bars, bars[1] + 2) - 1].end
    rows = [("original", piece.original, "black"), ("model alone", alone.score, "#d62728"),
            ("following\nthe form", follow.score, "#1f77b4")]
    fig, axes = plt.subplots(len(rows) + (plan.source is not None), 1, figsize=(11, 7), sharey=True)
    for ax, (label, score, colour) in zip(axes, rows):
        lane(ax, score, args.track, start, end, piece, colour, label)
        ax.axvspan(piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end, color="#fff3b0", zorder=-1)
        ax.set_xlim(start, end)
        ax.set_xticks([])
    if plan.source is not None:  # the source window, moved under the span
        src_start = piece.bars[max(0, plan.source - 2)].start
        src_end = piece.bars[min(piece.num_bars, plan.source + n + 2) - 1].end
        ax = axes[-1]
        lane(ax, piece.original, args.track, src_start, src_end, piece, "#2ca02c",
             f"source\nbars {plan.source + 1}-{plan.source + n}")
        ax.axvspan(piece.bars[plan.source].start, piece.bars[plan.source + n - 1].end, color="#d8f0d8", zorder=-1)
        ax.set_xlim(src_start, src_end)
        ax.set_xticks([])
    fig.suptitle(f"{args.midi.rsplit('/', 1)[-1]}: track {args.track}, bars {first}-{last} (shaded); "
                 f"{follow.form or ''}", fontsize=9)
    fig.tight_layout()
    atomic_write(args.output, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    print(args.output)


if __name__ == "__main__":
    main()
