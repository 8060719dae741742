"""A take's clock and notes: note-ons and note-offs make the player's bars, held notes end at the bar line, an early
downbeat belongs to its bar, and whole bars can be sent at once."""

from __future__ import annotations

import pytest

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveNote, LiveOptions
from midi_rwkv.live.session import LiveSession


@pytest.fixture
def session(infiller):
    engine = LiveEngine(infiller, None, [NewTrack(33)], options=LiveOptions(seed=0),
                        controls=LiveControls(qpm=60.0, metre=(3, 4)))
    steps = []
    live = LiveSession(engine, steps.append)
    live.start()
    live.steps = steps
    return live


def test_notes_make_bars_held_notes_end_at_the_bar_line_and_early_downbeats_move_on(session):
    session.note_on(60, 90, 0.0)
    session.note_off(60, 1.0)
    session.note_on(64, 80, 2.0)  # still held when bar 0 ends
    session.note_on(62, 70, 3.0 - 0.01)  # a hair before bar 1: its downbeat
    assert session.advance(2.99) == 0
    assert session.advance(3.0) == 1
    session.note_on(67, 0, 3.5)  # velocity 0: a note-off
    session.advance(6.0)
    session.finish()
    engine = session.engine
    assert [(n.pitch, n.start, n.duration) for n in engine.played_notes(0)] == [(60, 0.0, 1.0), (64, 2.0, 1.0)]
    assert [(n.pitch, n.start) for n in engine.played_notes(1)] == [(62, 0.0)]
    assert [s.played for s in session.steps] == [0, 1]
    assert session.seconds_at(3.0) == pytest.approx(3.0) and session.quarters_at(4.5) == pytest.approx(4.5)


def test_whole_bars_are_taken_in_order_and_inside_the_bar(session):
    with pytest.raises(MidiRwkvError, match="next bar to play is 0"):
        session.bar(1, [])
    with pytest.raises(MidiRwkvError, match="past the bar"):
        session.bar(0, [LiveNote(60, 3.0, 1.0)])
    session.bar(0, [LiveNote(60, 0.5, 1.0)])
    session.finish()
    assert [(n.pitch, n.start) for n in session.engine.played_notes(0)] == [(60, 0.5)]
