"""The span a metric looks at: one track, a run of real bars, in the ticks of the scores compared.

Generated files are the original score with one span replaced (``tokenizer.merge``), so the
generated and the original share resolution, tempo map and bar lines: every metric compares them
tick for tick, with no unit conversion (the original release mixed tpq 24 and tpq 480,
docs/original-release.md#onset-f1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from midi_rwkv.tokenizer.metre import Bar


@dataclass(frozen=True)
class Region:
    track: int  # track index in both scores
    bars: tuple[Bar, ...]  # the infilled real bars, consecutive
    tpq: int

    @property
    def start(self) -> int:
        return self.bars[0].start

    @property
    def end(self) -> int:
        return self.bars[-1].end


@dataclass(frozen=True)
class Notes:
    """Notes of one track as arrays (onset, duration, pitch), sorted by onset."""

    time: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray

    def __len__(self) -> int:
        return len(self.time)

    def onset_in(self, start: int, end: int) -> "Notes":
        mask = (self.time >= start) & (self.time < end)
        return Notes(self.time[mask], self.duration[mask], self.pitch[mask])

    def sounding(self, start: int, end: int) -> "Notes":
        """Notes that overlap [start, end), including notes held from before ``start``."""
        mask = (self.time < end) & (self.time + np.maximum(self.duration, 1) > start)
        return Notes(self.time[mask], self.duration[mask], self.pitch[mask])


def track_notes(score: Score, track: int) -> Notes:
    if track >= len(score.tracks):
        empty = np.zeros(0, dtype=np.int64)
        return Notes(empty, empty, empty)
    arrays = score.tracks[track].notes.numpy()
    order = np.argsort(arrays["time"], kind="stable")
    return Notes(*(arrays[key][order].astype(np.int64) for key in ("time", "duration", "pitch")))


def span_notes(score: Score, region: Region) -> Notes:
    """Notes of the region's track that start inside the region."""
    return track_notes(score, region.track).onset_in(region.start, region.end)
