"""Merging generated bars back into the user's score.

The result is the *original* score (its resolution, tempos, time signatures, every other track
and every note outside the span untouched) with the notes of one track whose onsets fall in the
span replaced by the generated ones. Generated time signatures are not trusted: bar headers come
from the piece, so the real metre is kept (the original release forces 4/4 here, docs/original-release.md#real-metres).
Generated notes that start past the end of the span are dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Note, Score, Track

from midi_rwkv.tokenizer.codec import Codec
from midi_rwkv.tokenizer.remi import BarIds, decoded_track, split_bars
from midi_rwkv.tokenizer.score import Piece


@dataclass
class MergeReport:
    """What a merge did: bars found in the generation, and notes placed or dropped."""

    bars_expected: int
    bars_generated: int
    notes_added: int
    notes_outside_span: int


def split_section(codec: Codec, section_ids: list[int]) -> list[BarIds]:
    """Cut generated model ids (starting at the first bar header) into bars of base ids.

    Everything from ``FillBar_End`` (or ``Track_End``) on is ignored; controls stay in the bodies
    (decoding skips them).
    """
    vocab = codec.vocab
    stops = {vocab["FillBar_End"], vocab["Track_End"], vocab["EOS_None"]}
    ids = codec.decode(section_ids)
    end = next((n for n, i in enumerate(ids) if i in stops), len(ids))
    return split_bars(ids[:end], vocab)


def _decode_span(
    piece: Piece, codec: Codec, program: int, bars: tuple[int, int], section_ids: list[int]
) -> tuple[list[Note], MergeReport]:
    """Generated bars as notes in the original's ticks, on the piece's own bar grid (headers from the piece)."""
    span = piece.token_span(*bars)
    grid = piece.token_bars[span[0] : span[1]]
    generated = split_section(codec, section_ids)
    vocab = codec.vocab
    body = [b for _, b in generated[: len(grid)]] + [()] * max(0, len(grid) - len(generated))
    fixed = [(vocab.header(g.numerator, g.denominator), b) for g, b in zip(grid, body)]
    new_track, tpq_new = decoded_track(vocab, program, fixed)
    start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
    tpq = piece.original.ticks_per_quarter
    notes, outside = [], 0
    for note in new_track.notes:
        time = start + round(note.time * tpq / tpq_new)
        if time >= end:
            outside += 1
            continue
        notes.append(Note(time, max(1, round(note.duration * tpq / tpq_new)), note.pitch, note.velocity))
    return notes, MergeReport(len(grid), len(generated), len(notes), outside)


def merge_section(
    piece: Piece, codec: Codec, track: int, bars: tuple[int, int], section_ids: list[int]
) -> tuple[Score, MergeReport]:
    """Replace the user's ``track`` in real bars ``[start, end)`` with a generated section.

    Args:
        section_ids: model ids of the section from its first bar header on (the tail of the
            prompt after ``FillBar_Start``, or after the track controls, followed by the generated ids).
    """
    target_track = piece.original.tracks[track]
    program = -1 if target_track.is_drum else target_track.program
    notes, report = _decode_span(piece, codec, program, bars, section_ids)
    start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
    out = piece.original.copy()
    target = out.tracks[track]  # the other notes keep their order and every attribute
    target.notes.filter(lambda n: not start <= n.time < end, inplace=True)
    target.notes.extend(notes)
    return out, report


def append_track(
    piece: Piece, codec: Codec, template: Track, bars: tuple[int, int], section_ids: list[int]
) -> tuple[Score, MergeReport]:
    """The original score with a new track (``template``'s name, program and drum flag) holding a generated
    section over real bars ``[start, end)``."""
    program = -1 if template.is_drum else template.program
    notes, report = _decode_span(piece, codec, program, bars, section_ids)
    out = piece.original.copy()
    track = template.copy()
    track.notes.clear()
    track.notes.extend(notes)
    out.tracks.append(track)
    return out, report
