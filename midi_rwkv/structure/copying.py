"""Copying bars of a track from one place in a song to another, in the song's own ticks.

Used where the song's form decides what a span holds: the ``copy`` and ``structure-copy`` reference rows, and bars
that an infill followed token for token from their source (which then keep the source's own timing, velocities and
durations rather than the tokenizer's quantised rendering of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from symusic import Score

from midi_rwkv.tokenizer.metre import Bar


def copy_bars(score: Score, original: Score, track: int, bars: Sequence[Bar], pairs: Iterable[tuple[int, int]],
              end: int) -> None:
    """In place: for each (destination, source) pair of real bars, ``track``'s notes starting in the destination
    bar of ``score`` are replaced by those starting in the source bar of ``original``, moved by the bars' distance.
    A source note that starts past the destination bar's length is left out; every copied note ends by ``end``
    (the end of the span written)."""
    pairs = list(pairs)
    targets = [bars[d] for d, _ in pairs]
    notes = score.tracks[track].notes
    kept = [n.copy() for n in notes if not any(b.start <= n.time < b.end for b in targets)]
    copied = []
    for dst, src in pairs:
        to, source = bars[dst], bars[src]
        for note in original.tracks[track].notes:
            if source.start <= note.time < source.end and note.time - source.start < to.end - to.start:
                moved = note.copy()
                moved.time = note.time - source.start + to.start
                moved.duration = min(note.duration, end - moved.time)
                copied.append(moved)
    notes.clear()
    notes.extend(sorted(kept + copied, key=lambda x: (x.time, x.pitch)))
