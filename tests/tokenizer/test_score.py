import pytest

from midi_rwkv.errors import BarRangeError, EmptyScoreError, MidiFileError, TrackIndexError
from midi_rwkv.tokenizer import load_score
from tests.conftest import FIXTURES, TPQ, make_score


@pytest.mark.parametrize(
    "name, error",
    [
        ("corrupt_truncated.mid", MidiFileError),
        ("corrupt_not_midi.mid", MidiFileError),
        ("empty_file.mid", MidiFileError),
        ("no_notes.mid", EmptyScoreError),
        ("missing.mid", MidiFileError),
    ],
    ids=["truncated", "not-midi", "zero-bytes", "no-notes", "missing"],
)
def test_bad_files_raise_one_clear_error(name, error):
    with pytest.raises(error, match=name):
        load_score(FIXTURES / name)


def test_corrupt_bytes_raise_midi_file_error():
    with pytest.raises(MidiFileError):
        load_score(b"MThd garbage")


def test_pitches_outside_the_range_are_dropped_and_counted(tok):
    notes = [(0, TPQ, 60, 80), (TPQ, TPQ, 109, 80), (2 * TPQ, TPQ, 15, 80), (3 * TPQ, TPQ, 108, 80)]
    piece = tok.prepare(make_score([(0, 4, 4)], [(0, False, notes)]))
    assert piece.dropped_notes == {"pitch outside range": 2}
    assert sorted(n.pitch for n in piece.score.tracks[0].notes) == [60, 108]


def test_tracks_keep_the_users_numbering(tok, band):
    piece = tok.prepare(band)
    assert piece.track_ids == [0, 2]  # empty track 1 and program-127 track 3 have no tokens
    assert piece.dropped_notes == {"track without program token": 1}
    assert piece.track_index(2) == 1
    with pytest.raises(TrackIndexError, match="no notes"):
        piece.track_index(1)
    with pytest.raises(TrackIndexError, match="does not exist"):
        piece.track_index(4)


@pytest.mark.parametrize("span", [(3, 3), (5, 2), (-1, 2), (6, 9)], ids=["empty", "reversed", "negative", "past-end"])
def test_bar_spans_outside_the_piece_raise(tok, band, span):
    piece = tok.prepare(band)
    assert piece.num_bars == 6
    with pytest.raises(BarRangeError):
        piece.token_span(*span)


def test_a_piece_with_only_unrepresentable_notes_is_empty(tok):
    with pytest.raises(EmptyScoreError):
        tok.prepare(make_score([(0, 4, 4)], [(0, False, [(0, TPQ, 10, 80)])]))
