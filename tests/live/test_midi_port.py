"""The MIDI port: opened where the machine has MIDI, skipped with a one-line reason where it has none; and, on
stand-in ports, the player's notes go in and the accompaniment goes out at its times, sent ahead of its bars."""

from __future__ import annotations

import time

import pytest

from midi_rwkv.inference.infiller import program_register
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveOptions
from midi_rwkv.live.host import LiveHost
from midi_rwkv.live.midi_port import MidiFrontEnd, MidiUnavailable, open_ports

mido = pytest.importorskip("mido")  # the MIDI port is optional: without mido there is nothing to test


def test_the_port_opens_where_there_is_midi_and_is_skipped_with_a_reason_where_not():
    try:
        ports = open_ports()
    except MidiUnavailable as err:
        reason = str(err)
        assert reason and "\n" not in reason
        pytest.skip(f"no MIDI port on this machine: {reason}")
    for port in ports:
        port.close()


class FakeIn:
    def __init__(self):
        self.pending: list = []

    def iter_pending(self):
        while self.pending:
            yield self.pending.pop(0)


class FakeOut:
    def __init__(self):
        self.sent: list[tuple[float, mido.Message]] = []

    def send(self, message):
        self.sent.append((time.monotonic(), message))


def test_notes_go_in_and_the_accompaniment_goes_out_at_its_times(infiller):
    def make_engine(controls):
        return LiveEngine(infiller, None, [NewTrack(33)], options=LiveOptions(seed=0), controls=controls)

    host = LiveHost(make_engine, LiveControls(qpm=400.0, metre=(2, 4)))  # bars of 0.3 s
    inport, outport = FakeIn(), FakeOut()
    front = MidiFrontEnd(host, inport, outport)
    arrived = {}
    host.listen(lambda name, data: arrived.setdefault(data["bar"], time.monotonic()) if name == "notes" else None)
    front.start()
    session = host.session
    inport.pending += [mido.Message("note_on", note=60, velocity=90), mido.Message("note_off", note=60)]
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        front.poll()
        time.sleep(0.002)
    host.stop()
    assert [n.pitch for n in session.engine.played_notes(0)] == [60]
    changes = [m for _, m in outport.sent if m.type == "program_change"]
    assert [(m.channel, m.program) for m in changes] == [(0, 33)]
    low, high = program_register(33)
    ons = [(t, m) for t, m in outport.sent if m.type == "note_on"]
    assert ons and all(m.channel == 0 and low <= m.note <= high and t >= host.origin for t, m in ons)
    for bar, when in arrived.items():
        if bar > 1:  # the count-in is written before the clock starts
            assert when < host.origin + session.seconds_at(session.bounds(bar)[0])  # ready before its bar
    front.all_notes_off()
    assert outport.sent[-1][1].type == "control_change"
