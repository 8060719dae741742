"""The take: the song so far and every bar played or written since, its bar grid, and each bar encoded once.

Bars are final for a track once nobody will change them: the song's own bars, the player's bars once played, a
part's bars once written. A final bar is encoded once and kept; a bar that is not final yet is empty (headers only):
the prompt shows the player's coming bars and the parts' unwritten bars as rests.
"""

from __future__ import annotations

import math

from symusic import Score, Tempo, TimeSignature

from midi_rwkv.live.bars import GridBar, LiveNote, bar_ticks, last_onset, notes_in_bar, to_ticks, tolerance
from midi_rwkv.live.encoding import BarEncoder, EncodedBar
from midi_rwkv.live.window import LiveWindow, TrackFacts
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.metre import Bar, real_bars

DEFAULT_TPQ = 480


def song_grid(score: Score) -> list[GridBar]:
    """The bars of the song so far (through its last onset), each with the tempo in force at its start."""
    end = last_onset(score.tracks)
    if end is None:
        return []
    tempos = sorted((t.time, t.qpm) for t in score.tempos) or [(0, 120.0)]
    grid = []
    for i, bar in enumerate(real_bars(score, end + tolerance(score.ticks_per_quarter))):
        qpm = next((q for time, q in reversed(tempos) if time <= bar.start), tempos[0][1])
        grid.append(GridBar(i, bar.start, bar.end, bar.numerator, bar.denominator, round(float(qpm), 3)))
    return grid


class Take:
    """The growing score, its grid, and per (track, bar) the encoding of every final bar."""

    def __init__(self, song: Score | None, tokenizer: InfillTokenizer):
        self.score = song.copy() if song is not None else Score(DEFAULT_TPQ)
        self.tpq = self.score.ticks_per_quarter
        self.grid = song_grid(self.score)
        self.song_bars = len(self.grid)
        self.encoder = BarEncoder(tokenizer, self.tpq)
        self.final: dict[int, int] = {}  # track -> bars before this one are final (absent: every bar)
        self._cache: dict[tuple[int, int], EncodedBar] = {}

    def program(self, track: int) -> int:
        """The track's program, -1 for drums."""
        t = self.score.tracks[track]
        return -1 if t.is_drum else t.program

    def metre_and_tempo(self) -> tuple[tuple[int, int], float]:
        """The song's metre and tempo where it ends (or starts, if empty): 4/4 at 120 where it names none."""
        signatures = sorted((s.time, s.numerator, s.denominator) for s in self.score.time_signatures)
        tempos = sorted((t.time, t.qpm) for t in self.score.tempos)
        metre = (signatures[-1][1], signatures[-1][2]) if signatures else (4, 4)
        return metre, round(float(tempos[-1][1]), 3) if tempos else 120.0

    def add_bar(self, metre: tuple[int, int], qpm: float) -> GridBar:
        """The next bar of the grid; a metre or tempo that changes here is written into the score."""
        self.encoder.metres(*metre)  # UnsupportedMetreError before anything changes
        start = self.grid[-1].end if self.grid else 0
        bar = GridBar(len(self.grid), start, start + bar_ticks(*metre, self.tpq), metre[0], metre[1], qpm)
        before = self.grid[-1] if self.grid else None
        if before is None or (before.numerator, before.denominator) != metre:
            self.score.time_signatures.append(TimeSignature(start, *metre))
        if before is None or not math.isclose(before.qpm, qpm):
            self.score.tempos.append(Tempo(start, qpm))
        self.grid.append(bar)
        return bar

    def write(self, track: int, index: int, notes: list[LiveNote]) -> None:
        """Bar ``index`` of ``track`` is final, holding ``notes``."""
        bar = self.grid[index]
        self.score.tracks[track].notes.extend(to_ticks(notes, bar, self.tpq))
        self.final[track] = index + 1

    def notes(self, track: int, index: int) -> list[tuple[int, int, int, int]]:
        return notes_in_bar(self.score.tracks[track], self.grid[index], self.tpq)

    def is_final(self, track: int, index: int) -> bool:
        return index < self.final.get(track, math.inf)

    def encoded(self, track: int, index: int) -> EncodedBar:
        """Bar ``index`` of ``track`` in model ids (empty where it is not final yet)."""
        key = (track, index)
        if key in self._cache:
            return self._cache[key]
        bar = self.grid[index]
        t = self.score.tracks[track]
        if not self.is_final(track, index):
            return self.encoder.empty(bar.numerator, bar.denominator, t.is_drum)
        change = index == 0 or not math.isclose(self.grid[index - 1].qpm, bar.qpm)
        encoded = self.encoder.encode(bar, t.program, t.is_drum, self.notes(track, index), bar.qpm if change else None)
        self._cache[key] = encoded
        return encoded

    def window(self, tracks: list[int], start: int, end: int) -> LiveWindow:
        """Bars ``[start, end)`` of ``tracks``, in that order."""
        rows = []
        for track in tracks:
            t = self.score.tracks[track]
            facts = TrackFacts(-1 if t.is_drum else t.program, t.is_drum)
            rows.append((track, facts, [self.encoded(track, b) for b in range(start, end)]))
        return LiveWindow.build("live take", rows)

    def history(self, track: int, end: int, count: int) -> list[EncodedBar]:
        """The track's final bars among the ``count`` before bar ``end``, oldest first."""
        return [self.encoded(track, b) for b in range(max(0, end - count), end) if self.is_final(track, b)]

    def bars(self) -> list[Bar]:
        return [Bar(b.start, b.end, b.numerator, b.denominator) for b in self.grid]
