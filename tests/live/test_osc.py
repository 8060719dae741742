"""The OSC endpoint over loopback: a played file in, the accompaniment out on the bar grid and in register, ahead
of its bars; refusals (malformed packets and messages, clients that vanish) logged while it keeps serving; no
address but loopback."""

from __future__ import annotations

import logging
import time

import pytest
from symusic import Score

from midi_rwkv.cli import main
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.infiller import program_register
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveOptions
from midi_rwkv.live.host import LiveHost
from midi_rwkv.live.osc import OscEndpoint
from tests.conftest import TPQ, make_score
from tests.live.osc_client import Client

BASS, PIANO = 33, 0


@pytest.fixture
def endpoint(request, infiller):
    transport = getattr(request, "param", "udp")

    def make_engine(controls):
        return LiveEngine(infiller, None, [NewTrack(BASS), NewTrack(PIANO)], options=LiveOptions(seed=0),
                          controls=controls)

    server = OscEndpoint(LiveHost(make_engine, LiveControls()), "127.0.0.1", 0, transport)
    server.serve_in_thread()
    yield server
    server.close()


def played_file(tmp_path, bars: int = 4) -> Score:
    """A melody written to a MIDI file and read back: what a player's DAW would play."""
    bar = 4 * TPQ
    notes = [(b * bar + k * TPQ, TPQ - 60, 60 + (b + k) % 8, 90) for b in range(bars) for k in range(4)]
    path = tmp_path / "played.mid"
    make_score([(0, 4, 4)], [(0, False, notes)]).dump_midi(str(path))
    return Score(str(path))


def test_a_played_file_goes_in_and_the_accompaniment_comes_out_on_the_grid_in_register_ahead(endpoint, tmp_path):
    score = played_file(tmp_path)
    tpq, bars = score.ticks_per_quarter, 4
    client = Client(endpoint.port)
    client.send("/live/start", "host")
    assert client.wait("/live/ready") == [0, 120.0, 4, 4]
    registers = {1: program_register(BASS), 2: program_register(PIANO)}
    events = sorted([(n.time / tpq, "/live/note_on", n.pitch, n.velocity) for n in score.tracks[0].notes]
                    + [(n.end / tpq, "/live/note_off", n.pitch, 0) for n in score.tracks[0].notes])
    written = {}

    def collect(bar: int) -> None:  # the grid line and every part's notes for ``bar``
        grid = client.wait("/live/grid", where=lambda a: a[0] == bar)
        assert grid[1:] == [4.0 * bar, 4.0, 120.0, 4, 4]
        for _ in registers:
            notes = client.wait("/live/notes", where=lambda a: a[0] == bar and (bar, a[1]) not in written)
            track, flat = notes[1], notes[2:]
            written[bar, track] = [flat[k:k + 4] for k in range(0, len(flat), 4)]
            for pitch, start, duration, velocity in written[bar, track]:
                assert 0 <= start < 4 and duration > 0 and 1 <= velocity <= 127
                assert registers[track][0] <= pitch <= registers[track][1]

    collect(0), collect(1)  # the count-in
    for bar in range(bars):
        for at, address, pitch, velocity in [e for e in events if bar * 4 <= e[0] < (bar + 1) * 4]:
            client.send(address, pitch, velocity, at) if address.endswith("on") else client.send(address, pitch, at)
        client.send("/live/clock", float((bar + 1) * 4))
        collect(bar + 2)  # written when bar ``bar`` ended: before the player's clock reaches its start
        played, seconds, margin = client.wait("/live/timing", where=lambda a: a[0] == bar)
        assert 0 < seconds < 2.0 and margin == pytest.approx(2.0 - seconds, abs=1e-3) and margin > 0
    assert sum(len(n) for n in written.values()) > 0
    client.send("/live/stop")
    assert client.wait("/live/stopped") == [bars]
    client.close()


def test_the_server_clock_closes_bars_as_time_passes(endpoint):
    client = Client(endpoint.port)
    client.send("/live/tempo", 400.0)
    client.send("/live/metre", 2, 4)  # bars of 0.3 s
    client.send("/live/start")
    assert client.wait("/live/ready") == [0, 400.0, 2, 4]
    client.send("/live/note_on", 64, 100)
    client.send("/live/note_off", 64)
    assert client.wait("/live/timing", where=lambda a: a[0] == 0)
    assert client.wait("/live/grid", where=lambda a: a[0] == 2)
    client.send("/live/part", 1, "density", 2)
    client.send("/live/status")
    playing, next_bar, qpm, num, den = client.wait("/live/status")
    assert playing == 1 and next_bar >= 1 and (qpm, num, den) == (400.0, 2, 4)
    client.send("/live/stop")
    assert client.wait("/live/stopped")[0] >= 1
    client.close()


def test_malformed_packets_and_messages_are_refused_and_the_endpoint_keeps_serving(endpoint, caplog):
    caplog.set_level(logging.WARNING, logger="midi_rwkv.live")
    client = Client(endpoint.port)
    refused = [
        (lambda: client.raw(b"\x00not osc at all"), "not an OSC packet"),
        (lambda: client.raw(b"/live/tempo\x00"), "/live/tempo takes qpm"),  # no type tag: read as no arguments
        (lambda: client.send("/live/tempo", "fast"), "qpm must be a number"),
        (lambda: client.send("/live/tempo", 1000.0), "'tempo' must be"),
        (lambda: client.send("/live/metre", 5, 3), "'metre' 5/3"),
        (lambda: client.send("/live/nowhere"), "unknown address"),
        (lambda: client.send("/live/note_on", 60, 90), "no take is playing"),
        (lambda: client.send("/live/part", 1, "density"), "/live/part takes"),
        (lambda: client.send("/live/bar", 0, 60, 0.0, 1.0), "groups of 4"),
        (lambda: client.send("/live/start", "sundial"), "clock 'sundial'"),
    ]
    for send, why in refused:
        send()
        (text,) = client.wait("/live/error")
        assert why in text
        assert any(why in r.getMessage() and r.getMessage().startswith("refused from") for r in caplog.records)
    client.send("/live/ping")
    assert client.wait("/live/pong") == []
    client.send("/live/start", "host")
    assert client.wait("/live/ready")
    client.send("/live/bar", 0, 60, 5.0, 1.0, 90)  # a note past the bar's end
    assert "past the bar" in client.wait("/live/error")[0]
    client.send("/live/bar", 0, 60, 0.0, 1.0, 90)
    assert client.wait("/live/timing")[0] == 0
    client.close()


def test_a_udp_client_that_vanishes_leaves_the_endpoint_serving_the_next(endpoint):
    first = Client(endpoint.port)
    first.send("/live/start", "host")
    first.wait("/live/ready")
    first.close()  # gone without a word: its replies go nowhere
    second = Client(endpoint.port)
    second.send("/live/start", "host")
    assert second.wait("/live/ready") == [0, 120.0, 4, 4]
    second.send("/live/bar", 0)
    assert second.wait("/live/timing")[0] == 0
    second.close()


@pytest.mark.parametrize("endpoint", ["tcp"], indirect=True)
def test_a_tcp_client_that_drops_mid_message_is_logged_its_take_stops_and_the_next_is_served(endpoint, caplog):
    caplog.set_level(logging.INFO, logger="midi_rwkv.live")
    first = Client(endpoint.port, "tcp")
    first.send("/live/start", "host")
    assert first.wait("/live/ready") == [0, 120.0, 4, 4]
    first.sock.sendall(b"\xc0/live/cl")  # half a frame, then gone
    first.close()
    second = Client(endpoint.port, "tcp")
    for _ in range(100):
        second.send("/live/status")
        if second.wait("/live/status")[0] == 0:  # the vanished client's take was stopped
            break
    else:
        raise AssertionError("the take of a vanished client kept playing")
    for _ in range(100):
        messages = [r.getMessage() for r in caplog.records]
        if any("disconnected mid-message" in m for m in messages):
            break
        time.sleep(0.05)
    assert any("disconnected mid-message (8 bytes dropped)" in m for m in messages)
    assert any("is gone: stopping the take" in m for m in messages)
    second.sock.sendall(b"\xc0\xdb\x00\xc0")  # a frame with a stray SLIP escape
    assert "malformed SLIP frame" in second.wait("/live/error")[0]
    second.send("/live/start", "host")
    assert second.wait("/live/ready")
    second.send("/live/bar", 0, 62, 0.0, 2.0, 80)
    assert second.wait("/live/timing")[0] == 0
    second.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_only_loopback_addresses_are_served(infiller, host):
    with pytest.raises(MidiRwkvError, match="127.0.0.1"):
        OscEndpoint(LiveHost(lambda c: None, LiveControls()), host, 0)


def test_the_command_refuses_a_network_address_before_loading_a_model(capsys):
    assert main(["live", "--new", "33", "--host", "0.0.0.0", "--no-midi", "--model", "no-such-model.pth"]) == 2
    assert "listens on this machine only" in capsys.readouterr().err  # not a word about the model
