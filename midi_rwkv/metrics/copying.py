"""How much of an infill is a copy of the song: the share of written bars whose notes equal a bar found elsewhere.

Following the song's form can drift into copying (kNN-LM's known failure in open-ended generation), so every report
says how often it happened. A bar is compared by its notes' onsets within the bar and pitches (velocity and
duration left out), onsets on the groove metric's 1/32-note grid, so that a bar written through the tokenizer (its
onsets quantised) still equals the bar it copies; bars without notes are not counted, since every rest equals every
other rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from symusic import Score

from midi_rwkv.metrics.region import Region, track_notes
from midi_rwkv.structure.features import grid_step
from midi_rwkv.tokenizer.metre import Bar


def bar_key(notes, bar: Bar, step: int) -> tuple[tuple[int, int], ...]:
    """The notes starting in ``bar`` as sorted, distinct (onset cell within the bar, pitch) pairs, ``step`` ticks a
    cell (onsets rounded to the nearest cell)."""
    inside = notes.onset_in(bar.start, bar.end)
    cells = ((inside.time - bar.start + step // 2) // step).tolist()
    return tuple(sorted(set(zip(cells, inside.pitch.tolist()))))


def copy_rate(generated: Score, original: Score, region: Region, bars: Sequence[Bar]) -> float:
    """Of the span's bars with notes in ``generated``, the share whose notes equal those of some bar of the same
    track in ``original`` outside the span (``bars``: every real bar of the song); NaN when the span is silent."""
    written = track_notes(generated, region.track)
    source = track_notes(original, region.track)
    span, step = set(region.bars), grid_step(region.tpq)
    known = {bar_key(source, bar, step) for bar in bars if bar not in span}
    keys = [bar_key(written, bar, step) for bar in region.bars]
    keys = [k for k in keys if k]
    if not keys:
        return float("nan")
    return sum(k in known for k in keys) / len(keys)
