"""Playing along live: how long after a played bar ends the parts' next bar is ready, against the bar's length.

    python bench/live.py                                  # the shipped model, GGML and PyTorch, 1, 2 and 4 parts
    python bench/live.py --engines torch --parts 2 --bars 16
    python bench/live.py --write-doc docs/live.md          # and write the table into the document's block

A POP909 song (``--song``, default: the first whose melody runs 64 bars of 4/4 after its intro) is played bar by bar
through :class:`midi_rwkv.live.LiveEngine` at 120 quarter notes a minute in 4/4 (a bar lasts 2.0 s): its intro is the
song so far, its melody the player, and the engine accompanies with its piano (1 part), its piano and bridge (2), and
those with a new bass (GM 33) and new drums (4). The clock is simulated (nothing sleeps), and each bar's compute time
is measured for real: the time from the played bar's end until every part's bar after next is written. That bar is
due one bar later, so the margin is the bar's length less that time; it must be positive in every bar. POP909 marks
its songs 2/4: two of its bars make one 4/4 bar here. Extra rows on the first engine show what the prompt cache saves
with 2 parts: without keeping shared prefixes, and with a sliding window.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from symusic import Score, Tempo, TimeSignature

from midi_rwkv.data.corpora import Pop909Corpus
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveOptions
from midi_rwkv.live.bars import GridBar, from_ticks, notes_in_bar
from midi_rwkv.live.take import song_grid

import docblock  # bench/docblock.py, beside this file
from machine import cpu_name  # bench/machine.py, beside this file

QPM, METRE = 120.0, (4, 4)
PARTS = {1: ["PIANO"], 2: ["PIANO", "BRIDGE"], 4: ["PIANO", "BRIDGE", 33, "drums"]}


def four_four(score: Score) -> tuple[Score, int]:
    """The song re-barred in 4/4 from its first full bar (a shorter pickup bar before it), at :data:`QPM`; and that
    first bar's tick."""
    full = [s for s in score.time_signatures if s.numerator * 4 // s.denominator >= 2]
    first = full[0].time if full else 0
    out = score.copy()
    out.time_signatures.clear()
    if first:
        out.time_signatures.append(TimeSignature(0, round(first / out.ticks_per_quarter), 4))
    out.time_signatures.append(TimeSignature(first, *METRE))
    out.tempos.clear()
    out.tempos.append(Tempo(0, QPM))
    return out, first


def melody_bars(score: Score, first: int, track: int) -> tuple[int, list[GridBar]]:
    """The index of the 4/4 bar where the melody comes in, and every 4/4 bar through its last note."""
    length = 4 * score.ticks_per_quarter
    times = score.tracks[track].notes.numpy()["time"]
    come_in = max(1, int((times.min() - first) // length))
    count = int((times.max() - first) // length) + 1
    return come_in, [GridBar(i, first + i * length, first + (i + 1) * length, *METRE, QPM) for i in range(count)]


def choose_song(corpus: Pop909Corpus, bars: int, wanted: str | None) -> tuple[str, Score, int]:
    for index, song in enumerate(corpus.ids):
        if wanted is not None and song != wanted:
            continue
        score, first = four_four(corpus.load(index))
        melody = [t.name for t in score.tracks].index("MELODY")
        come_in, grid = melody_bars(score, first, melody)
        if len(grid) - come_in >= bars or wanted is not None:
            return song, score, first
    raise SystemExit(f"no POP909 song with {bars} bars of melody after its intro" + (f" ({wanted})" if wanted else ""))


def split(score: Score, first: int, bars: int) -> tuple[Score, list[list], dict[str, int]]:
    """The song so far (its intro, every track), the melody's notes per played bar, and the track numbers by name."""
    names = {t.name: i for i, t in enumerate(score.tracks)}
    melody = names["MELODY"]
    come_in, grid = melody_bars(score, first, melody)
    grid = grid + [GridBar(i, first + 4 * i * score.ticks_per_quarter, first + 4 * (i + 1) * score.ticks_per_quarter,
                           *METRE, QPM) for i in range(len(grid), come_in + bars)]
    cut = grid[come_in].start - score.ticks_per_quarter // 24
    song = score.copy()
    for track in song.tracks:
        track.notes.filter(lambda n: n.time < cut, inplace=True)
    tpq = score.ticks_per_quarter
    played = [from_ticks(notes_in_bar(score.tracks[melody], grid[i], tpq), tpq) for i in range(come_in, come_in + bars)]
    return song, played, names


def run(infiller: Infiller, song: Score, played: list, names: dict, parts: int, options: LiveOptions,
        take: Path | None = None) -> dict:
    specs = [names[p] if isinstance(p, str) and p in names else NewTrack(is_drum=True) if p == "drums"
             else NewTrack(p) for p in PARTS[parts]]
    engine = LiveEngine(infiller, song, specs, player=names["MELODY"], options=options,
                        controls=LiveControls(qpm=QPM, metre=METRE))
    count_in = engine.start()
    steps = [engine.play_bar(notes) for notes in played]
    if take is not None:
        take.parent.mkdir(parents=True, exist_ok=True)
        engine.take.score.dump_midi(str(take))
    seconds = [s.seconds for s in steps]
    prompt, read = sum(s.prompt_tokens for s in steps), sum(s.tokens_read for s in steps)
    notes = sum(len(p.notes) for s in steps for p in s.parts)
    return {"parts": parts, "count-in": count_in.seconds, "median": statistics.median(seconds), "worst": max(seconds),
            "margin": min(s.margin for s in steps), "late": sum(s.margin <= 0 for s in steps), "bars": len(steps),
            "prompt": prompt / len(steps), "read": read / max(prompt, 1), "notes": notes / len(steps) / parts}


def table(rows: list[dict]) -> str:
    lines = ["| engine, threads | parts | window, prefixes kept | median | worst | least margin (bar 2.0 s) | "
             "bars late | prompt tokens a bar | share read | notes a part a bar | count-in |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['parts']} | {r['variant']} | {r['median']:.3f} s | {r['worst']:.3f} s | "
                     f"{r['margin']:.3f} s | {r['late']} of {r['bars']} | {r['prompt']:,.0f} | {r['read']:.0%} | "
                     f"{r['notes']:.1f} | {r['count-in']:.2f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"),
                        help="the POP909 folder (default: ../shared/data/pop909)")
    parser.add_argument("--song", help="a POP909 song id, e.g. 003 (default: the first long enough)")
    parser.add_argument("--bars", type=int, default=64, help="bars played (default 64)")
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 4], choices=sorted(PARTS),
                        help="accompanying parts (default: 1 2 4)")
    parser.add_argument("--engines", nargs="+", default=["ggml", "torch"], help="ggml, torch (default: both)")
    parser.add_argument("--threads", type=int, default=1, help="threads (default 1: the machine is shared)")
    parser.add_argument("--model", help="model .pth (default: the shipped midi_rwkv.pth)")
    parser.add_argument("--no-variants", action="store_true", help="leave out the prompt-cache comparison rows")
    parser.add_argument("--takes", type=Path, metavar="DIR", help="also write each run's take as MIDI into DIR")
    docblock.add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    song_id, score, first = choose_song(Pop909Corpus(args.data), args.bars, args.song)
    song, played, names = split(score, first, args.bars)
    cpu = cpu_name()
    print(f"CPU: {cpu}; POP909 {song_id}, {len(song_grid(song))} bars of intro, {args.bars} bars played",
          file=sys.stderr)
    rows = []
    base = LiveOptions(seed=0)
    variants = [("anchored (hop 4), kept", base)]
    for e, engine in enumerate(args.engines):
        infiller = Infiller.load(args.model, engine=engine, threads=args.threads)
        label = f"{infiller.generator.engine.name.split(' (')[0]}, {args.threads}"
        extra = [] if e or args.no_variants or 2 not in args.parts else [
            ("anchored (hop 4), not kept", LiveOptions(seed=0, prime=False)),
            ("sliding (hop 1), kept", LiveOptions(seed=0, hop=1))]
        for parts in args.parts:
            for variant, options in variants + (extra if parts == 2 else []):
                take = args.takes / f"{song_id}-{engine}-{parts}parts-{len(rows)}.mid" if args.takes else None
                row = run(infiller, song, played, names, parts, options, take) | {"engine": label, "variant": variant}
                print(table([row]).splitlines()[-1], file=sys.stderr)
                rows.append(row)
    text = (f"POP909 {song_id}, {args.bars} bars at {QPM:g} quarter notes a minute in 4/4, the shipped model, "
            f"one candidate a part, on {cpu} (shared with other jobs while measured):\n\n{table(rows)}")
    print(text)
    docblock.write_from_args(args, "bench/live.py", text)


if __name__ == "__main__":
    main()
