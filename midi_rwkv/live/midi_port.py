"""The MIDI port of ``midi-rwkv live``: the player's notes come in on a MIDI input, the accompaniment goes out on a
MIDI output, each note at its time, on the server's clock.

Ports come from mido with python-rtmidi (ALSA on Linux, CoreMIDI on macOS, Windows MM). Without a port name, the
endpoint opens virtual ports called ``midi-rwkv`` where the system has them (ALSA, CoreMIDI), for a DAW or a
keyboard to be connected to. Where the machine has no MIDI system at all (a server, a container without
``/dev/snd/seq``), :func:`open_ports` raises :class:`MidiUnavailable` with the reason, and ``midi-rwkv live`` runs
without the port.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.live.host import LiveHost

log = logging.getLogger("midi_rwkv.live")
PORT_NAME = "midi-rwkv"
DRUM_CHANNEL = 9
TICK = 0.002  # seconds between looks at the ports


class MidiUnavailable(MidiRwkvError):
    """This machine (or this Python) has no MIDI port to open."""


def open_ports(name: str | None = None):
    """(input, output) mido ports: ``name`` for both (an output of that name if there is one, else a virtual one), or
    virtual ports called :data:`PORT_NAME`."""
    try:
        import mido
    except ImportError:
        raise MidiUnavailable("the MIDI port needs mido and python-rtmidi (pip install mido python-rtmidi)") from None
    try:
        inputs, outputs = mido.get_input_names(), mido.get_output_names()
    except Exception as err:  # rtmidi raises its own SystemError where there is no MIDI system
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MidiUnavailable(f"this machine has no MIDI system ({reason})") from None
    try:
        if name is None:
            return mido.open_input(PORT_NAME, virtual=True), mido.open_output(PORT_NAME, virtual=True)
        if name not in inputs:
            raise MidiUnavailable(f"no MIDI input called {name!r} (inputs: {', '.join(inputs) or 'none'})")
        out = mido.open_output(name) if name in outputs else mido.open_output(PORT_NAME, virtual=True)
        return mido.open_input(name), out
    except MidiUnavailable:
        raise
    except Exception as err:
        raise MidiUnavailable(f"could not open the MIDI ports ({str(err).splitlines()[0] if str(err) else err})") \
            from None


class MidiFrontEnd:
    """Drives a :class:`LiveHost` from MIDI ports (duck-typed: ``iter_pending()`` on the input, ``send(message)`` on
    the output), on the server's clock. :meth:`poll` does one round; :meth:`run` repeats it until :meth:`stop`. A take
    started elsewhere (the OSC endpoint) plays through the ports too."""

    def __init__(self, live: LiveHost, inport, outport):
        import mido

        self.mido, self.inport, self.outport, self.live = mido, inport, outport, live
        live.listen(self._emit)
        self._due: list[tuple[float, int, object]] = []  # (time, order, message)
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.channels: dict[int, int] = {}

    def start(self) -> None:
        """A take on the server's clock."""
        self.live.start("server")

    def _channels(self) -> None:
        """Each part of the new take gets a channel (drums: channel 10) and its program."""
        self.channels.clear()
        free = (c for c in range(16) if c != DRUM_CHANNEL)
        for part in self.live.session.engine.parts:
            channel = DRUM_CHANNEL if part.is_drum else next(free, 0)
            self.channels[part.track] = channel
            if not part.is_drum:
                self.outport.send(self.mido.Message("program_change", channel=channel, program=part.program))

    def poll(self) -> None:
        """Read the input's pending messages, and send the output's messages that are due."""
        for message in self.inport.iter_pending():
            try:
                if message.type == "note_on":
                    self.live.note_on(message.note, message.velocity)
                elif message.type == "note_off":
                    self.live.note_off(message.note)
            except MidiRwkvError as err:
                log.warning("refused MIDI %s: %s", message, err)
        now = self.live.clock()
        with self._lock:
            while self._due and self._due[0][0] <= now:
                self.outport.send(heapq.heappop(self._due)[2])

    def run(self) -> None:
        self.start()
        while not self._stop.is_set():
            self.poll()
            time.sleep(TICK)
        self.live.stop()
        self.all_notes_off()

    def stop(self) -> None:
        self._stop.set()

    def all_notes_off(self) -> None:
        with self._lock:
            self._due.clear()
        for channel in set(self.channels.values()):
            self.outport.send(self.mido.Message("control_change", channel=channel, control=123, value=0))

    def _emit(self, name: str, data: dict) -> None:
        if name == "ready":
            self._channels()
        if name != "notes" or self.live.session is None:
            return
        session = self.live.session
        start = session.bounds(data["bar"])[0]
        channel = self.channels.get(data["track"], 0)
        with self._lock:
            for onset, duration, pitch, velocity in data["notes"]:
                on = self.live.origin + session.seconds_at(start + onset)
                off = self.live.origin + session.seconds_at(start + onset + duration)
                for when, kind, vel in ((on, "note_on", velocity), (off, "note_off", 0)):
                    message = self.mido.Message(kind, channel=channel, note=pitch, velocity=vel)
                    heapq.heappush(self._due, (when, next(self._order), message))
