"""Notes of one bar and the take's bar grid, in the units front ends speak: quarter notes from the bar's start.

The take (the song so far and everything played and written since) is a symusic score in its own ticks; each bar of
its grid has a start and end tick, a metre and a tempo. A note belongs to the bar its onset falls in, counting an onset
up to half the tokenizer's grid step before a bar line as that bar's downbeat (as quantisation would move it there:
a player who comes in a hair early still plays the downbeat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from symusic import Note, Track

from midi_rwkv.errors import MidiRwkvError


@dataclass(frozen=True)
class LiveNote:
    """A note of one bar: ``start`` and ``duration`` in quarter notes, ``start`` from the bar's start."""

    pitch: int
    start: float
    duration: float
    velocity: int = 80

    def __post_init__(self):
        if not (0 <= self.pitch <= 127 and 1 <= self.velocity <= 127):
            raise MidiRwkvError(f"note {self.pitch} velocity {self.velocity}: pitch 0-127, velocity 1-127")
        if not (math.isfinite(self.start) and math.isfinite(self.duration) and self.start >= 0 and self.duration > 0):
            raise MidiRwkvError(f"note {self.pitch}: start {self.start} must be 0 or more, duration {self.duration} "
                                "more than 0 (quarter notes)")

    def as_list(self) -> list:
        """``[start, duration, pitch, velocity]``, as the studio's API writes a note."""
        return [round(self.start, 4), round(self.duration, 4), self.pitch, self.velocity]


@dataclass(frozen=True)
class GridBar:
    """One bar of the take: ``[start, end)`` in the take's ticks, its metre and its tempo."""

    index: int
    start: int
    end: int
    numerator: int
    denominator: int
    qpm: float

    def quarters(self, tpq: int) -> float:
        return (self.end - self.start) / tpq

    def seconds(self, tpq: int) -> float:
        """How long the bar lasts at its tempo."""
        return self.quarters(tpq) * 60.0 / self.qpm

    def as_dict(self, tpq: int) -> dict:
        return {"bar": self.index, "start": self.start / tpq, "quarters": self.quarters(tpq),
                "metre": [self.numerator, self.denominator], "qpm": self.qpm}


def bar_ticks(numerator: int, denominator: int, tpq: int) -> int:
    """A bar's length in ticks (exact for the metres a tokenizer writes)."""
    return round(numerator * 4 * tpq / denominator)


def tolerance(tpq: int) -> int:
    """Ticks before a bar line that still count as its downbeat: half of the tokenizer's 1/12-quarter step."""
    return math.ceil(tpq / 24)


def notes_in_bar(track: Track, bar: GridBar, tpq: int) -> list[tuple[int, int, int, int]]:
    """(onset from the bar's start, duration, pitch, velocity) in ticks of the notes of ``track`` that belong to
    ``bar``; an early downbeat starts at 0."""
    arrays = track.notes.numpy()
    if not len(arrays["time"]):
        return []
    tol = tolerance(tpq)
    time = arrays["time"]
    mask = (time >= bar.start - tol) & (time < bar.end - tol)
    return [(max(0, int(t) - bar.start), int(d), int(p), int(v)) for t, d, p, v in
            zip(time[mask], arrays["duration"][mask], arrays["pitch"][mask], arrays["velocity"][mask])]


def to_ticks(notes: list[LiveNote], bar: GridBar, tpq: int) -> list[Note]:
    """Notes of ``bar`` as symusic notes in the take's ticks; those starting after the bar's end are dropped."""
    out = []
    for n in notes:
        onset = bar.start + round(n.start * tpq)
        if onset >= bar.end - tolerance(tpq) and n.start > 0:
            continue
        out.append(Note(onset, max(1, round(n.duration * tpq)), n.pitch, n.velocity))
    return out


def from_ticks(notes: list[tuple[int, int, int, int]], tpq: int) -> list[LiveNote]:
    """(onset, duration, pitch, velocity) ticks from a bar's start -> :class:`LiveNote`, sorted by onset."""
    return [LiveNote(p, t / tpq, max(d, 1) / tpq, max(1, min(v, 127))) for t, d, p, v in sorted(notes)]


def last_onset(tracks) -> int | None:
    """The latest note onset of ``tracks`` (None without notes)."""
    onsets = [int(np.max(t.notes.numpy()["time"])) for t in tracks if t.notes]
    return max(onsets) if onsets else None
