"""The structure-copy reference row and the copy rate, on a song with a known form."""

import math

from midi_rwkv.metrics.copying import copy_rate
from midi_rwkv.metrics.region import Region
from midi_rwkv.metrics.systems import reference_score
from tests.conftest import TPQ
from tests.structure.test_structure import song


def _piece(tok, melody: str = "form"):
    """ABAB in 4-bar sections; the melody (track 0) follows the form (the B sections a tone up), or with
    ``melody="fresh"`` every bar its own (moved up a semitone per bar)."""
    score = song("ABAB", melody_repeats=True)
    bar = 4 * TPQ
    for note in score.tracks[0].notes:
        index = note.time // bar
        note.pitch += index if melody == "fresh" else 2 * ((index // 4) % 2)
    return tok.prepare(score, "abab")


def _notes(score, piece, track, bars):
    start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
    return sorted((n.time, n.duration, n.pitch) for n in score.tracks[track].notes if start <= n.time < end)


def test_structure_copy_takes_the_bars_whose_accompaniment_matches(tok):
    piece = _piece(tok)
    score = reference_score("structure-copy", piece, 0, (8, 12))  # A again: bars 1-4 match exactly
    assert _notes(score, piece, 0, (8, 12)) == _notes(piece.original, piece, 0, (8, 12))
    first = reference_score("structure-copy", piece, 0, (0, 4))  # a span at bar 0 copies from after it
    assert _notes(first, piece, 0, (0, 4)) == _notes(piece.original, piece, 0, (0, 4))
    neighbours = reference_score("copy", piece, 0, (8, 12))  # the B section before it: another melody
    assert _notes(neighbours, piece, 0, (8, 12)) != _notes(piece.original, piece, 0, (8, 12))
    assert _notes(score, piece, 0, (0, 8)) == _notes(piece.original, piece, 0, (0, 8))  # the rest untouched


def test_copied_notes_end_with_the_span(tok):
    piece = _piece(tok)
    held = piece.original.copy()
    last = piece.bars[3]
    for note in held.tracks[0].notes:
        if last.start <= note.time < last.end:
            note.duration = 3 * (last.end - last.start)  # held far past the source window's end
    piece = tok.prepare(held, "held")
    score = reference_score("structure-copy", piece, 0, (8, 12))
    end = piece.bars[11].end
    assert all(n.time + n.duration <= end for n in score.tracks[0].notes if piece.bars[8].start <= n.time < end)


def test_copy_rate_counts_written_bars_equal_to_a_bar_elsewhere(tok):
    piece = _piece(tok)
    region = Region(0, tuple(piece.bars[8:12]), piece.original.ticks_per_quarter)
    assert copy_rate(piece.original, piece.original, region, piece.bars) == 1.0  # A repeats bars 1-4
    nudged = piece.original.copy()
    for note in nudged.tracks[0].notes:  # a few ticks off the grid: still the same bar on the 1/32 grid
        note.time += 3 if note.time >= piece.bars[8].start else 0
    assert copy_rate(nudged, piece.original, region, piece.bars) == 1.0
    fresh = _piece(tok, "fresh")  # a melody that never repeats
    assert copy_rate(fresh.original, fresh.original, region, fresh.bars) == 0.0
    silent = piece.original.copy()
    silent.tracks[0].notes.clear()
    assert math.isnan(copy_rate(silent, piece.original, region, piece.bars))
    assert TPQ // 8 > 3  # the nudge stays inside a cell


def test_a_reference_row_is_known_by_its_name_not_by_model_defaults():
    from midi_rwkv.metrics.systems import System

    # a default of the model settings (say the structure setting) changing must not refuse stored reference rows
    assert System("structure-copy").identity("bars") == {"name": "structure-copy"}
    assert "structure" in System("model", model="m.pth").to_dict()
