"""Merging back: only the span of one track changes; every other bar of every track is bit-identical."""

import pytest

from tests.conftest import note_tuples


def _check_merge(tok, source, track, bars, generated=None):
    piece = tok.prepare(source)
    seq = tok.bar_infill(piece, track, bars)
    out, report = tok.merge(piece, seq, seq.target if generated is None else generated)
    start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
    assert out.ticks_per_quarter == piece.original.ticks_per_quarter
    assert out.tempos == piece.original.tempos and out.time_signatures == piece.original.time_signatures
    for index, (before, after) in enumerate(zip(piece.original.tracks, out.tracks)):
        assert note_tuples(before, None, start) == note_tuples(after, None, start)
        assert note_tuples(before, end) == note_tuples(after, end)
        if index != track:
            assert note_tuples(before) == note_tuples(after)
    return piece, out, report, (start, end)


@pytest.mark.parametrize(
    "name, track, bars",
    [("waltz", 0, (2, 5)), ("jig", 1, (0, 2)), ("band", 2, (3, 6)), ("breve", 0, (3, 5)), ("chorale", 2, (4, 8))],
)
def test_merging_the_target_restores_the_quantised_bars(tok, request, chorale_path, name, track, bars):
    source = chorale_path if name == "chorale" else request.getfixturevalue(name)
    piece, out, report, (start, end) = _check_merge(tok, source, track, bars)
    assert report.bars_generated == report.bars_expected and report.notes_outside_span == 0
    # inside the span: the quantised notes, at the original resolution
    t = piece.track_index(track)
    a, b = piece.token_span(*bars)
    scale = piece.original.ticks_per_quarter / piece.score.ticks_per_quarter
    quantised = note_tuples(piece.score.tracks[t], piece.token_bars[a].start, piece.token_bars[b - 1].end)
    expected = [(round(t * scale), round(d * scale), p, v) for t, d, p, v in quantised]
    assert note_tuples(out.tracks[track], start, end) == expected


def test_short_generation_leaves_empty_bars(tok, waltz):
    piece, out, report, (start, end) = _check_merge(tok, waltz, 0, (2, 5), generated=[])
    assert report.bars_generated == 1 and report.notes_added == 0
    assert note_tuples(out.tracks[0], start, end) == []


def test_notes_past_the_span_are_dropped(tok, waltz):
    vocab = tok.codec.vocab
    # one bar: a note at position 40 of a 3/4 bar (36 positions) lies past the span
    body = [
        vocab["Position_0"],
        vocab["Pitch_60"],
        vocab["Velocity_79"],
        vocab["Duration_1.0.4"],
        vocab["Position_40"],
        vocab["Pitch_62"],
        vocab["Velocity_79"],
        vocab["Duration_1.0.4"],
        vocab["FillBar_End"],
    ]
    piece, out, report, span = _check_merge(tok, waltz, 0, (3, 4), generated=body)
    assert report.notes_added == 1 and report.notes_outside_span == 1


def test_merged_file_round_trips_through_midi(tok, chorale_path, tmp_path):
    from midi_rwkv.tokenizer import load_score

    piece, out, _, _ = _check_merge(tok, chorale_path, 1, (2, 4))
    out.dump_midi(tmp_path / "out.mid")
    again = load_score(tmp_path / "out.mid")
    assert [note_tuples(t) for t in again.tracks] == [note_tuples(t) for t in out.tracks]
