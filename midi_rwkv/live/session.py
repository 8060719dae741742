"""One take as a front end sees it: note events and a clock in, the engine's bars out, on a worker thread.

Time is counted in quarter notes from the start of the first live bar (the bar after the song so far). A note-on
and its note-off make a note; a note still held when its bar is read lasts to the bar's end. When the clock passes
a bar's end (:meth:`LiveSession.advance`, or a whole bar sent at once with :meth:`LiveSession.bar`), the bar is
queued, and the worker has the engine read it and write the bar after next, then hands the :class:`BarStep` to
``on_step``. Receiving never waits for the model, so notes are stamped when they arrive.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.live.bars import LiveNote
from midi_rwkv.live.engine import BarStep, LiveEngine

log = logging.getLogger("midi_rwkv.live")
EARLY = 1 / 24  # quarter notes before a bar line that still count as its downbeat (see bars.tolerance)


class LiveSession:
    """A started take: see the module docstring. Thread-safe."""

    def __init__(self, engine: LiveEngine, on_step: Callable[[BarStep], None]):
        self.engine, self.on_step = engine, on_step
        self.first = engine.take.song_bars  # the first live bar
        self._lock = threading.Lock()
        self._held: dict[int, tuple[float, int]] = {}  # pitch -> (onset, velocity)
        self._notes: list[tuple[float, float, int, int]] = []  # (onset, duration, pitch, velocity), finished
        self._closed = self.first  # bars before this one are queued
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self.running = False

    def start(self) -> BarStep:
        """The count-in (written before the clock starts), then the worker."""
        step = self.engine.start()
        self.running = True
        self._worker = threading.Thread(target=self._work, name="live-engine", daemon=True)
        self._worker.start()
        return step

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop: the bar being written is finished, the bars still queued are dropped."""
        if self.running:
            self.running = False
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                self._queue.task_done()
            self._queue.put(None)
            if self._worker is not None and self._worker is not threading.current_thread():
                self._worker.join(timeout)

    def finish(self) -> None:
        """Stop once every bar already queued is written."""
        if self.running:
            self._queue.join()
        self.stop()

    # ---- the clock -------------------------------------------------------------------

    def bounds(self, index: int) -> tuple[float, float]:
        """Bar ``index``'s start and end, in quarter notes from the first live bar; a bar the engine has not laid
        down yet continues the grid with the current metre."""
        grid, tpq = self.engine.take.grid, self.engine.tpq
        origin = grid[self.first].start
        if index < len(grid):
            bar = grid[index]
            return (bar.start - origin) / tpq, (bar.end - origin) / tpq
        num, den = self.engine.controls.metre
        length = num * 4 / den
        end = (grid[-1].end - origin) / tpq
        return end + (index - len(grid)) * length, end + (index - len(grid) + 1) * length

    def seconds_at(self, quarters: float) -> float:
        """Seconds from the first live bar's start to ``quarters``, through each bar's tempo."""
        seconds, index = 0.0, self.first
        while True:
            start, end = self.bounds(index)
            qpm = self._qpm(index)
            if quarters <= end:
                return seconds + (quarters - start) * 60.0 / qpm
            seconds += (end - start) * 60.0 / qpm
            index += 1

    def quarters_at(self, seconds: float) -> float:
        """The inverse of :meth:`seconds_at`."""
        elapsed, index = 0.0, self.first
        while True:
            start, end = self.bounds(index)
            qpm = self._qpm(index)
            length = (end - start) * 60.0 / qpm
            if seconds <= elapsed + length:
                return start + (seconds - elapsed) * qpm / 60.0
            elapsed += length
            index += 1

    def _qpm(self, index: int) -> float:
        grid = self.engine.take.grid
        return grid[index].qpm if index < len(grid) else self.engine.controls.qpm

    @property
    def next_bar_end(self) -> float:
        """Where the bar the player is in ends (quarter notes)."""
        return self.bounds(self._closed)[1]

    # ---- events ----------------------------------------------------------------------

    def note_on(self, pitch: int, velocity: int, at: float) -> None:
        """A key went down at ``at`` (velocity 0: a key went up, as in MIDI)."""
        if velocity == 0:
            self.note_off(pitch, at)
            return
        with self._lock:
            if pitch in self._held:  # a repeated note-on ends the held one
                self._finish(pitch, at)
            self._held[pitch] = (at, velocity)

    def note_off(self, pitch: int, at: float) -> None:
        with self._lock:
            if pitch in self._held:
                self._finish(pitch, at)

    def _finish(self, pitch: int, at: float) -> None:
        onset, velocity = self._held.pop(pitch)
        self._notes.append((onset, max(at - onset, 1 / 48), pitch, velocity))

    def advance(self, now: float) -> int:
        """The clock reached ``now``: queue every bar that ended by then; how many were queued."""
        count = 0
        with self._lock:
            while self.running and self.bounds(self._closed)[1] <= now:
                self._queue.put((self._closed, self._take_bar(self._closed)))
                self._closed += 1
                count += 1
        return count

    def bar(self, index: int, notes: list[LiveNote]) -> None:
        """A whole played bar sent at once (its notes from the bar's start); it must be the next bar to close."""
        with self._lock:
            if index != self._closed:
                raise MidiRwkvError(f"bar {index} sent, but the next bar to play is {self._closed}")
            length = self.bounds(index)[1] - self.bounds(index)[0]
            late = [n for n in notes if n.start >= length - EARLY]
            if late:
                raise MidiRwkvError(f"bar {index}: a note starts at {late[0].start}, past the bar's {length} quarters")
            self._queue.put((index, list(notes)))
            self._closed += 1

    def _take_bar(self, index: int) -> list[LiveNote]:
        """The notes of bar ``index``, taken out of the buffer; a note still held is read now, lasting to the bar's
        end (its note-off, when it comes, finds nothing to end)."""
        start, end = self.bounds(index)
        edge = end - EARLY
        mine = [n for n in self._notes if n[0] < edge]
        self._notes = [n for n in self._notes if n[0] >= edge]
        mine += [(onset, end - onset, pitch, vel) for pitch, (onset, vel) in self._held.items() if onset < edge]
        self._held = {p: held for p, held in self._held.items() if held[0] >= edge}
        return [LiveNote(pitch, max(0.0, onset - start), max(duration, 1 / 48), vel)
                for onset, duration, pitch, vel in sorted(mine)]

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            try:
                self._play(*item)
            finally:
                self._queue.task_done()

    def _play(self, index: int, notes: list[LiveNote]) -> None:
        try:
            step = self.engine.play_bar(notes)
        except Exception as err:  # one bad bar must not end the take
            log.error("bar %d: the engine failed: %s", index, err)
            return
        try:
            self.on_step(step)
        except Exception as err:
            log.error("bar %d: could not hand the accompaniment on: %s", index, err)
