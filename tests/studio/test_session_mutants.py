"""studio/session.py, checked closely enough to kill its mutants (docs/testing.md): a song's versions, its takes and
its view, on a small score built in code with candidates whose notes are known. No model runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from symusic import Note, Score

from midi_rwkv.errors import MidiFileError, TrackIndexError
from midi_rwkv.inference.generator import Generation
from midi_rwkv.studio.session import Song, StudioError, Take, Version, new_id
from midi_rwkv.tokenizer import BarControls
from midi_rwkv.tokenizer.controls import describe_controls
from tests.conftest import TPQ, make_score, note_tuples

BAR = 4 * TPQ


def _bytes(tempos=((0, 100.0004),)) -> bytes:
    """4 bars of 4/4; track 0: a quarter on beats 1 and 3 of each bar (pitch 60 + bar); track 1: a whole note per
    bar; track 2: one note of program 127 (the vocabulary lacks it: not editable)."""
    melody = [(b * BAR + k * 2 * TPQ, TPQ, 60 + b, 80) for b in range(4) for k in range(2)]
    bass = [(b * BAR, BAR, 40, 70) for b in range(4)]
    lacking = [(0, TPQ, 60, 50)]
    score = make_score([(0, 4, 4)], [(0, False, melody), (33, False, bass), (127, False, lacking)], tempos=tempos)
    score.tracks[1].name = "Bass"
    return score.dumps_midi()


@pytest.fixture
def song(tok):
    return Song.open(_bytes(), "dir/my song.mid", tok)


def _put(song: Song, take_id: str, notes, track: int = 0, bars=(1, 3), mode: str = "bars", program: int = 0,
         is_drum: bool = False) -> Take:
    song.takes[take_id] = Take(take_id, 7, track, bars, list(notes), {}, mode, program, is_drum)
    return song.takes[take_id]


def test_a_studio_error_answers_400_unless_told_and_ids_are_16_hex_digits():
    error = StudioError("no")
    assert (str(error), error.status) == ("no", 400) and StudioError("gone", 404).status == 404
    ids = {new_id() for _ in range(20)}
    assert len(ids) == 20 and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_a_song_opens_as_its_first_version_named_by_its_file(song, tok):
    assert song.name == "my song" and len(song.id) == 16 and song.position == 0 and song.takes == {}
    assert [v.label for v in song.versions] == ["opened"] and isinstance(song.versions[0], Version)
    assert song.score is song.versions[0].score
    prepared = song._piece[1]
    assert song._piece[0] == 0 and song.piece() is prepared  # the piece made on opening is reused
    assert note_tuples(song.score.tracks[1]) == [(b * BAR, BAR, 40, 70) for b in range(4)]
    assert Song.open(_bytes(), "x.mid", tok).id != song.id


def test_keep_stores_the_notes_a_candidate_wrote_in_its_span_and_returns_its_view(song):
    generated = song.score.copy()
    notes = generated.tracks[0].notes
    notes.clear()
    for time, duration, pitch in ((BAR - 1, 1, 50), (BAR, TPQ, 90), (2 * BAR + TPQ, TPQ // 2, 91),
                                  (3 * BAR - 1, 1, 92), (3 * BAR, TPQ, 51)):
        notes.append(Note(time, duration, pitch, 99))
    requested, realised = [BarControls(2), BarControls(3)], [BarControls(1), BarControls(4)]
    candidate = SimpleNamespace(score=generated, requested=requested, realised=realised, control_error=1.5,
                                generation=Generation(stopped="done", seconds=1.23456), form="follows bars 1-2")
    request = SimpleNamespace(track=0, bars=(1, 3), mode="bars", program=5, drums=False)
    view = song.keep(candidate, 42, request)
    kept = [(BAR, TPQ, 90, 99), (2 * BAR + TPQ, TPQ // 2, 91, 99), (3 * BAR - 1, 1, 92, 99)]
    assert view == {
        "id": view["id"], "seed": 42, "mode": "bars", "track": 0, "bars": [1, 3], "program": 5, "is_drum": False,
        "notes": [[4.0, 1.0, 90, 99], [9.0, 0.5, 91, 99], [12 - 1 / TPQ, 1 / TPQ, 92, 99]],
        "requested": [describe_controls(c) for c in requested], "realised": [describe_controls(c) for c in realised],
        "control_error": 1.5, "stopped": "done", "seconds": 1.235, "form": "follows bars 1-2",
    }
    assert len(view["id"]) == 16 and list(song.takes) == [view["id"]]
    assert song.takes[view["id"]] == Take(view["id"], 42, 0, (1, 3), kept, view, "bars", 5, False)
    drums = SimpleNamespace(track=0, bars=(0, 4), mode="new", program=0, drums=True)
    other = song.keep(candidate, 1, drums)
    assert other["id"] != view["id"] and len(song.takes) == 2 and song.takes[other["id"]].is_drum
    assert song.takes[other["id"]].mode == "new" and len(song.takes[other["id"]].notes) == 5


def test_accept_replaces_the_span_of_a_bar_take_sorted_by_time_then_pitch(song):
    before = note_tuples(song.score.tracks[0])
    _put(song, "t", [(2 * BAR, TPQ, 72, 90), (2 * BAR, TPQ, 64, 90), (BAR, TPQ, 70, 90)])
    song.accept("t")
    assert [(n.time, n.pitch) for n in song.score.tracks[0].notes] == [
        (0, 60), (2 * TPQ, 60), (BAR, 70), (2 * BAR, 64), (2 * BAR, 72), (3 * BAR, 63), (3 * BAR + 2 * TPQ, 63)]
    assert note_tuples(song.versions[0].score.tracks[0]) == before  # the first version is untouched
    assert note_tuples(song.score.tracks[1]) == note_tuples(song.versions[0].score.tracks[1])
    assert [v.label for v in song.versions] == ["opened", "track 0, bars 2-3 (seed 7)"] and song.position == 1
    assert song.piece().bars[0].start == 0 and song._piece[0] == 1  # the piece follows the version
    assert [n[2] for n in note_tuples(song.piece().original.tracks[0], BAR, 3 * BAR)] == [70, 64, 72]


def test_accept_of_a_whole_track(song):
    _put(song, "w", [(b * BAR, BAR, 45, 60) for b in range(4)], track=1, bars=(0, 4), mode="track")
    song.accept("w")
    assert note_tuples(song.score.tracks[1]) == [(b * BAR, BAR, 45, 60) for b in range(4)]
    assert song.versions[-1].label == "track 1, whole (seed 7)"


@pytest.mark.parametrize("is_drum, name, label", [
    (False, "Program 33", "new track, program 33 (seed 7)"),
    (True, "Drums", "new drum track (seed 7)"),
])
def test_accept_of_a_new_track_adds_it_under_the_others(song, is_drum, name, label):
    notes = [(BAR, TPQ, 38, 100), (0, TPQ, 36, 100), (0, TPQ, 35, 100)]
    _put(song, "n", notes, track=3, bars=(0, 4), mode="new", program=33, is_drum=is_drum)
    tracks = len(song.score.tracks)
    song.accept("n")
    track = song.score.tracks[tracks]
    assert len(song.score.tracks) == tracks + 1
    assert (track.name, track.program, track.is_drum) == (name, 33, is_drum)
    assert [(n.time, n.duration, n.pitch, n.velocity) for n in track.notes] == sorted(notes)
    assert song.versions[-1].label == label


def test_an_unknown_take_is_refused_with_404(song):
    with pytest.raises(StudioError) as refused:
        song.accept("nope")
    assert (str(refused.value), refused.value.status) == ("no such candidate (it may belong to another song)", 404)
    assert len(song.versions) == 1


def test_undo_and_redo_stop_at_the_ends_with_409(song):
    _put(song, "a", [(BAR, TPQ, 70, 90)])
    _put(song, "b", [(BAR, TPQ, 71, 90)])
    song.accept("a")
    song.accept("b")
    with pytest.raises(StudioError) as refused:
        song.redo()
    assert (str(refused.value), refused.value.status) == ("nothing to redo", 409)
    song.undo()
    assert song.position == 1
    song.undo()
    assert song.position == 0
    with pytest.raises(StudioError) as refused:
        song.undo()
    assert (str(refused.value), refused.value.status) == ("nothing to undo", 409) and song.position == 0
    song.redo()
    assert song.position == 1 and song.view()["can_redo"] and song.view()["can_undo"]
    song.redo()
    assert song.position == 2 and not song.view()["can_redo"]
    song.undo()
    song.accept("a")
    assert len(song.versions) == 3 and song.position == 2


def test_the_view_of_a_song(song):
    view = song.view()
    melody = [[b * 4.0 + k * 2.0, 1.0, 60 + b, 80] for b in range(4) for k in range(2)]
    assert view == {
        "id": song.id, "name": "my song", "qpm": 100.0, "version": 1, "can_undo": False, "can_redo": False,
        "beats": 16.0,
        "bars": [{"start": 4.0 * b, "end": 4.0 * b + 4, "numerator": 4, "denominator": 4} for b in range(4)],
        "tracks": [
            {"index": 0, "name": "track0", "program": 0, "is_drum": False, "notes": melody, "editable": True},
            {"index": 1, "name": "Bass", "program": 33, "is_drum": False,
             "notes": [[4.0 * b, 4.0, 40, 70] for b in range(4)], "editable": True},
            {"index": 2, "name": "track2", "program": 127, "is_drum": False, "notes": [[0.0, 1.0, 60, 50]],
             "editable": False},
        ],
        "history": [{"version": 1, "label": "opened"}],
    }
    _put(song, "t", [(BAR, TPQ, 70, 90)])
    song.accept("t")
    view = song.view()
    assert (view["version"], view["can_undo"], view["can_redo"]) == (2, True, False)
    assert view["history"] == [{"version": 1, "label": "opened"}, {"version": 2, "label": "track 0, bars 2-3 (seed 7)"}]


def test_the_view_of_a_song_without_a_tempo_plays_at_120(tok):
    song = Song.open(_bytes(tempos=()), "x.mid", tok)
    assert song.view()["qpm"] == 120.0


def test_export_writes_the_current_version(song):
    _put(song, "t", [(BAR, TPQ, 70, 90)])
    song.accept("t")
    exported = Score.from_midi(song.export())
    assert note_tuples(exported.tracks[0]) == note_tuples(song.score.tracks[0])
    assert (BAR, TPQ, 70, 90) in note_tuples(exported.tracks[0])


def test_messages_about_a_song_name_its_file_and_after_an_edit_the_song(song, tok):
    with pytest.raises(MidiFileError, match=r"^dir/broken\.mid: not a readable MIDI file"):
        Song.open(b"not midi", "dir/broken.mid", tok)
    with pytest.raises(TrackIndexError, match=r"^dir/my song\.mid: track 9 does not exist"):
        song.piece().track_index(9)
    _put(song, "t", [(BAR, TPQ, 70, 90)])
    song.accept("t")
    assert song.piece().name == "my song"
    with pytest.raises(TrackIndexError, match=r"^my song: track 9 does not exist"):
        song.piece().track_index(9)


def test_accept_sorts_notes_of_one_onset_by_pitch_whatever_their_lengths(song):
    _put(song, "t", [(BAR, 2 * TPQ, 60, 90), (BAR, TPQ, 70, 90), (BAR, TPQ, 65, 50)])
    song.accept("t")
    assert [(n.time, n.pitch) for n in song.score.tracks[0].notes if BAR <= n.time < 3 * BAR] == [
        (BAR, 60), (BAR, 65), (BAR, 70)]


def test_the_view_rounds_the_tempo_to_three_decimals(tok):
    song = Song.open(_bytes(tempos=((0, 90.25),)), "x.mid", tok)
    assert song.view()["qpm"] == 90.25
