"""Note arrays and the features the metrics compare: frame chroma and onset grids.

The metrics (``metrics/music.py``) and the song's structure (``structure/song.py``) compute them here, so that "these
two bars are alike" means what the evaluation's content preservation and groove similarity mean.

  * chroma: 16 equal frames per bar; a frame counts the pitch classes of every note sounding in it (held notes
    included), L2-normalised; smoothing then averages frames [i - 4, i + 4).
  * onset grid: a bar's cells at 1/32-note resolution (``tpq // 8`` ticks), True where a note starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Score

from midi_rwkv.tokenizer.metre import Bar

FRAMES_PER_BAR = 16
SMOOTHING = 8  # frames in the moving average, [i - 4, i + 4)


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
    """The notes of ``score.tracks[track]`` (no notes for a track the score does not have)."""
    if track >= len(score.tracks):
        empty = np.zeros(0, dtype=np.int64)
        return Notes(empty, empty, empty)
    arrays = score.tracks[track].notes.numpy()
    order = np.argsort(arrays["time"], kind="stable")
    return Notes(*(arrays[key][order].astype(np.int64) for key in ("time", "duration", "pitch")))


def grid_step(tpq: int) -> int:
    """Ticks per onset-grid cell: a 1/32 note."""
    return max(1, tpq // 8)


def frames(bars: Sequence[Bar], per_bar: int = FRAMES_PER_BAR) -> np.ndarray:
    """``[len(bars) * per_bar, 2]`` (start, end) ticks: equal frames inside each bar (bars of different lengths keep
    ``per_bar`` frames each)."""
    if not bars:
        return np.zeros((0, 2))
    edges = np.stack([np.linspace(bar.start, bar.end, per_bar + 1) for bar in bars])  # [B, per_bar + 1]
    return np.stack([edges[:, :-1], edges[:, 1:]], axis=-1).reshape(-1, 2)


def chroma(notes: Notes, frames: np.ndarray) -> np.ndarray:
    """``[F, 12]`` L2-normalised pitch-class counts of the notes sounding in each frame (zeros where silent).

    ``frames``: ``[F, 2]`` (start, end). Frames in time order (as :func:`frames` gives them for consecutive bars) are
    counted at once: the frames a note sounds in form one run, [first frame ending after its onset, last frame
    starting before its end); other frames one by one.
    """
    frames = np.asarray(frames, dtype=float).reshape(-1, 2)
    counts = np.zeros((len(frames), 12))
    starts, ends = frames[:, 0], frames[:, 1]
    if np.all(np.diff(starts) >= 0) and np.all(np.diff(ends) >= 0):
        first = np.searchsorted(ends, notes.time, side="right")  # frames with end > onset
        stop = np.searchsorted(starts, notes.time + np.maximum(notes.duration, 1), side="left")  # start < note end
        keep = first < stop
        change = np.zeros((len(frames) + 1, 12))
        np.add.at(change, (first[keep], notes.pitch[keep] % 12), 1)
        np.add.at(change, (stop[keep], notes.pitch[keep] % 12), -1)
        counts = np.cumsum(change, axis=0)[:-1]
    else:
        for i, (start, end) in enumerate(frames):
            np.add.at(counts[i], notes.sounding(start, end).pitch % 12, 1)
    return counts / (np.linalg.norm(counts, axis=1, keepdims=True) + 1e-8)


def smooth(chroma: np.ndarray, size: int = SMOOTHING) -> np.ndarray:
    """Moving average over frames (axis -2): frame i becomes the mean of frames [i - size/2, i + size/2), clipped
    at the ends. ``[F, 12]``, or ``[B, F, 12]`` to smooth inside each bar."""
    half = size // 2
    count = chroma.shape[-2]
    return np.stack([chroma[..., max(0, i - half) : i + half, :].mean(axis=-2) for i in range(count)], axis=-2)


def bar_chroma(notes: Notes, bars: Sequence[Bar]) -> np.ndarray:
    """``[B, 16, 12]`` chroma of each bar, smoothed inside the bar (a bar's frames never see its neighbours)."""
    raw = chroma(notes, frames(bars, FRAMES_PER_BAR)).reshape(len(bars), FRAMES_PER_BAR, 12)
    return smooth(raw, SMOOTHING)


def onset_grid(notes: Notes, start: int, end: int, step: int) -> np.ndarray:
    """``[Q]`` bool, Q = (end - start) // step (at least 1): which cells of [start, end) have a note starting."""
    grid = np.zeros(max(1, (end - start) // step), dtype=bool)
    onsets = notes.onset_in(start, end).time
    grid[np.minimum((onsets - start) // step, len(grid) - 1)] = True
    return grid


def onset_grids(notes: Notes, bars: Sequence[Bar], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Every bar's :func:`onset_grid` at once, for consecutive bars.

    Returns:
        ``[B, W]`` bool grids, padded with False to the longest bar's W cells, and ``[B]`` each bar's own cell count.
    """
    starts = np.array([bar.start for bar in bars], dtype=np.int64)
    ends = np.array([bar.end for bar in bars], dtype=np.int64)
    cells = np.maximum(1, (ends - starts) // step)
    grids = np.zeros((len(bars), int(cells.max(initial=1))), dtype=bool)
    index = np.searchsorted(starts, notes.time, side="right") - 1
    inside = index >= 0
    inside[inside] &= notes.time[inside] < ends[index[inside]]
    bar = index[inside]
    grids[bar, np.minimum((notes.time[inside] - starts[bar]) // step, cells[bar] - 1)] = True
    return grids, cells
