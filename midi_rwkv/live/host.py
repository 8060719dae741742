"""The live commands every front end shares (start, stop, notes, clock, controls) and the server's own clock.

A front end (the OSC endpoint, the MIDI port, later the studio's Jam view) turns what it receives into calls on one
:class:`LiveHost` and what the host emits into its own messages. Events are ``(name, data)`` pairs:

  * ``ready``: ``{"bar", "qpm", "metre"}``, a take started; ``bar`` is its first live bar (the clock's 0);
  * ``grid``: a bar of the grid the engine wrote (:meth:`GridBar.as_dict`, its start in quarter notes from the clock's
    0);
  * ``notes``: one part's notes for a bar (:meth:`PartBar.as_dict`);
  * ``timing``: ``{"played", "seconds", "margin"}`` for each played bar;
  * ``stopped``: ``{"bars"}``, the take ended.

The clock is the server's (``start("server")``: bars end as time passes at the take's tempo) or the player's
(``start("host")``: bars end when :meth:`LiveHost.clock` passes them, or when a whole bar is sent).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.live.bars import LiveNote
from midi_rwkv.live.engine import BarStep, LiveEngine
from midi_rwkv.live.options import LiveControls
from midi_rwkv.live.session import LiveSession

Emit = Callable[[str, dict], None]
CLOCKS = ("server", "host")


class LiveHost:
    """See the module docstring. ``make_engine(controls)`` opens a new take; every function given to :meth:`listen`
    receives every event (from the thread that caused it)."""

    def __init__(self, make_engine: Callable[[LiveControls], LiveEngine], controls: LiveControls,
                 clock: Callable[[], float] = time.monotonic):
        self.make_engine, self.clock = make_engine, clock
        self.listeners: list[Emit] = []
        self._controls = controls
        self.session: LiveSession | None = None  # the take playing
        self.last: LiveSession | None = None  # the latest take, playing or stopped
        self.mode = "server"
        self.origin = 0.0  # the server clock's time at the first live bar's start
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        self._wake = threading.Event()

    def listen(self, listener: Emit) -> None:
        self.listeners.append(listener)

    def emit(self, name: str, data: dict) -> None:
        for listener in self.listeners:
            listener(name, data)

    @property
    def controls(self) -> LiveControls:
        return self.session.engine.controls if self.session else self._controls

    def start(self, mode: str = "server") -> BarStep:
        """A new take (the one playing stops): the engine writes its count-in, then the clock runs."""
        if mode not in CLOCKS:
            raise MidiRwkvError(f"clock '{mode}': choose from {', '.join(CLOCKS)}")
        with self._lock:
            self.stop()
            engine = self.make_engine(self._controls)
            session = LiveSession(engine, lambda step: None)
            session.on_step = lambda step: self._on_step(session, step)
            step = session.start()
            self.session, self.last, self.mode = session, session, mode
            bar = engine.bar(session.first)
            self.emit("ready", {"bar": session.first, "qpm": bar.qpm, "metre": [bar.numerator, bar.denominator]})
            self._send_step(session, step)
            self.origin = self.clock()
            if mode == "server":
                self._wake.clear()
                self._ticker = threading.Thread(target=self._tick, args=(session,), name="live-clock", daemon=True)
                self._ticker.start()
            return step

    def stop(self) -> None:
        """End the take playing, if any (the bars already read are still written)."""
        with self._lock:
            session, self.session = self.session, None
            if session is None:
                return
            self._wake.set()
            session.stop()
            self.emit("stopped", {"bars": session.engine.next_played - session.first})

    def _running(self) -> LiveSession:
        if self.session is None:
            raise MidiRwkvError("no take is playing: start one first")
        return self.session

    def now(self) -> float:
        """The server clock, in quarter notes from the first live bar."""
        return self._running().quarters_at(self.clock() - self.origin)

    def note_on(self, pitch: int, velocity: int, at: float | None = None) -> None:
        with self._lock:
            self._running().note_on(pitch, velocity, self._when(at))

    def note_off(self, pitch: int, at: float | None = None) -> None:
        with self._lock:
            self._running().note_off(pitch, self._when(at))

    def _when(self, at: float | None) -> float:
        if at is not None:
            return at
        if self.mode != "server":
            raise MidiRwkvError("the player's clock is running: notes need their time (quarter notes)")
        return self.now()

    def advance(self, at: float) -> None:
        """The player's clock reached ``at`` quarter notes."""
        with self._lock:
            if self.mode != "host":
                raise MidiRwkvError("the server's clock is running: start with the player's clock ('host') to send it")
            self._running().advance(at)

    def bar(self, index: int, notes: list[LiveNote]) -> None:
        with self._lock:
            if self.mode != "host":
                raise MidiRwkvError("the server's clock is running: start with the player's clock ('host') to send "
                                    "bars")
            self._running().bar(index, notes)

    def set(self, **changes) -> LiveControls:
        """Change the tempo (``qpm``), ``metre`` or ``structure``: for the next take, and the bars still to write."""
        with self._lock:
            self._controls = replace(self._controls, **changes)
            if self.session:
                return self.session.engine.update(**changes)
            return self._controls

    def part(self, track: int, **changes) -> LiveControls:
        """Change one part's controls (``density``, ``polyphony``, ``register``, ``mute``)."""
        with self._lock:
            tracks = [p.track for p in self.session.engine.parts] if self.session else None
            if tracks is not None and track not in tracks:
                raise MidiRwkvError(f"track {track} is not a part of this take (parts: {tracks})")
            self._controls = self._controls.with_part(track, **changes)
            if self.session:
                engine = self.session.engine
                engine.set_controls(engine.controls.with_part(track, **changes))
                return engine.controls
            return self._controls

    def close(self) -> None:
        self.stop()

    def _tick(self, session: LiveSession) -> None:
        """The server's clock: wake at each bar line and close the bar."""
        while self.session is session and not self._wake.is_set():
            elapsed = self.clock() - self.origin
            session.advance(session.quarters_at(elapsed))
            wait = session.seconds_at(session.next_bar_end) - (self.clock() - self.origin)
            self._wake.wait(max(0.001, wait))

    def _on_step(self, session: LiveSession, step: BarStep) -> None:
        self._send_step(session, step)
        if step.played is not None:
            self.emit("timing", {"played": step.played, "seconds": round(step.seconds, 4),
                                 "margin": round(step.margin, 4)})

    def _send_step(self, session: LiveSession, step: BarStep) -> None:
        for bar in step.written:
            self.emit("grid", bar.as_dict(session.engine.tpq) | {"start": session.bounds(bar.index)[0]})
        for part in step.parts:
            self.emit("notes", part.as_dict())
