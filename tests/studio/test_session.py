"""A song's versions: accept, undo and redo at their edges, with candidates whose notes are known."""

import pytest

from midi_rwkv.studio.session import Song, StudioError, Take
from tests.conftest import FIXTURES, note_tuples

CHORALE = (FIXTURES / "bach_bwv66.6.mid").read_bytes()


@pytest.fixture
def song(tok):
    return Song.open(CHORALE, "bach.mid", tok)


def take(song: Song, take_id: str, pitch: int, track: int = 1, bars=(2, 4)) -> Take:
    """A candidate for ``bars`` of ``track``: one note of ``pitch`` on the first beat of each bar."""
    piece = song.piece()
    notes = [(piece.bars[b].start, song.score.ticks_per_quarter, pitch, 90) for b in range(*bars)]
    song.takes[take_id] = Take(take_id, 7, track, bars, notes, {}, "bars")
    return song.takes[take_id]


def span_notes(song: Song, track: int = 1, bars=(2, 4)):
    piece = song.piece()
    return note_tuples(song.score.tracks[track], piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end)


def test_accept_replaces_the_span_and_undo_redo_move_between_versions(song):
    original = span_notes(song)
    assert original  # the alto plays there
    high = take(song, "high", 72)
    song.accept("high")
    assert span_notes(song) == sorted(high.notes) and song.view()["version"] == 2
    song.undo()
    assert span_notes(song) == original and song.view()["version"] == 1 and song.view()["can_redo"]
    song.redo()
    assert span_notes(song) == sorted(high.notes)


def test_accept_after_an_undo_drops_the_undone_branch_and_shows_the_new_version(song):
    take(song, "high", 72)
    low = take(song, "low", 50)
    song.accept("high")
    song.undo()
    song.accept("low")
    view = song.view()
    assert view["version"] == 2 and not view["can_redo"] and view["can_undo"]
    assert [h["label"] for h in view["history"]] == ["opened", "track 1, bars 3-4 (seed 7)"]
    assert span_notes(song) == sorted(low.notes)  # the new candidate, not the undone one
    assert len(song.versions) == 2
    with pytest.raises(StudioError, match="nothing to redo"):
        song.redo()
    song.undo()
    assert song.view()["version"] == 1 and span_notes(song) != sorted(low.notes)


def test_undo_at_the_first_version_is_refused(song):
    with pytest.raises(StudioError, match="nothing to undo") as refused:
        song.undo()
    assert refused.value.status == 409
    view = song.view()
    assert view["version"] == 1 and not view["can_undo"] and song.position == 0
    with pytest.raises(StudioError, match="nothing to redo"):
        song.redo()
