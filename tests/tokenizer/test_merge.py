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


def _note(vocab, position: int, pitch: int, duration: str = "Duration_1.0.4") -> list[int]:
    return [vocab[f"Position_{position}"], vocab[f"Pitch_{pitch}"], vocab["Velocity_79"], vocab[duration]]


def test_notes_at_or_past_the_span_s_end_are_dropped_wherever_they_come(tok, waltz):
    vocab = tok.codec.vocab
    # a 3/4 bar has positions 0-35 (12 a beat): 36 is the next bar's downbeat, 40 past it; the model may write
    # positions out of order, so a note inside the span may follow them
    body = _note(vocab, 40, 62) + _note(vocab, 36, 64) + _note(vocab, 0, 60) + [vocab["FillBar_End"]]
    piece, out, report, (start, end) = _check_merge(tok, waltz, 0, (3, 4), generated=body)
    assert report.notes_added == 1 and report.notes_outside_span == 2
    assert note_tuples(out.tracks[0], start, end) == [(start, 480, 60, 79)]


def test_everything_after_the_end_of_the_fill_is_ignored(tok, waltz):
    vocab = tok.codec.vocab
    body = _note(vocab, 0, 60) + [vocab["FillBar_End"], vocab.bar] + _note(vocab, 0, 64)
    piece, out, report, (start, end) = _check_merge(tok, waltz, 0, (2, 4), generated=body)
    assert report.bars_generated == 1 and report.notes_added == 1
    assert note_tuples(out.tracks[0], start, end) == [(start, 480, 60, 79)]


def test_a_note_shorter_than_a_tick_of_a_coarse_file_lasts_one_tick(tok):
    from tests.conftest import make_score

    tpq = 4  # a sixteenth is one tick; the vocabulary's shortest duration (1/12 beat) rounds to none
    score = make_score([(0, 4, 4)], [(0, False, [(b * 16 + k * 4, 4, 60 + k, 80) for b in range(6) for k in range(4)])],
                       tpq=tpq)
    body = _note(tok.codec.vocab, 0, 72, "Duration_0.1.12") + [tok.codec.vocab["FillBar_End"]]
    piece, out, report, (start, end) = _check_merge(tok, score, 0, (2, 3), generated=body)
    assert note_tuples(out.tracks[0], start, end) == [(start, 1, 72, 79)]


@pytest.mark.parametrize("drums", [False, True], ids=["cello", "drums"])
def test_a_new_track_is_appended_with_the_template_s_name_and_program_and_only_the_generated_notes(tok, waltz, drums):
    from symusic import Note, Track

    from midi_rwkv.tokenizer.merge import append_track

    vocab = tok.codec.vocab
    piece = tok.prepare(waltz)
    template = Track(name="Kit" if drums else "Cello", program=0 if drums else 42, is_drum=drums)
    template.notes.append(Note(0, 10, 30, 30))  # a template's own notes are not kept
    header = list(vocab.header(3, 4))
    pitch = "PitchDrum_36" if drums else "Pitch_48"
    first = [vocab["Position_0"], vocab[pitch], vocab["Velocity_79"], vocab["Duration_1.0.4"]]
    third = [vocab["Position_12"], vocab[pitch], vocab["Velocity_79"], vocab["Duration_1.0.4"]]
    section = header + first + header + header + third + [vocab["Track_End"]] + header + first
    out, report = append_track(piece, tok.codec, template, (0, piece.num_bars), section)
    assert (report.bars_expected, report.bars_generated, report.notes_added) == (8, 3, 2)
    assert len(out.tracks) == len(piece.original.tracks) + 1
    for before, after in zip(piece.original.tracks, out.tracks):
        assert note_tuples(before) == note_tuples(after)
    added = out.tracks[-1]
    assert (added.name, added.program, added.is_drum) == (template.name, template.program, drums)
    bar = 3 * 480
    assert note_tuples(added) == [(0, 480, 36 if drums else 48, 79), (2 * bar + 480, 480, 36 if drums else 48, 79)]
    assert len(template.notes) == 1 and len(piece.original.tracks) == 2  # neither the template nor the piece changed
