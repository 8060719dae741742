"""A song's structure, computed once: how alike every two bars of each track are, where else the song plays what a
span's other tracks play, and its sections.

Bar features are the metrics' own (``features.py``): per track and bar, 16 frames of smoothed, L2-normalised chroma
(smoothing inside the bar) and the 1/32-note onset grid. For bars i, j of one track:

  * chroma similarity: the mean over the 16 frames of cos(c_i[f], c_j[f]); a frame silent in both scores 1, silent in
    one only 0 (content preservation's rule, bar by bar);
  * rhythm similarity: 1 - |g_i XOR g_j| / Q, Q the longer bar's cell count (groove similarity, bar by bar);
  * similarity: their mean for a pitched track, the rhythm similarity alone for drums (a drum's "pitch" names an
    instrument, not a pitch class). The mean weighs the two numbers the evaluation reports equally; a product would
    let the rhythm part, which empty cells keep near 1 for any two sparse bars, matter less than it seems, and
    either way an exact repeat scores 1.

A span's *sources* are the windows of the same length elsewhere in the song whose other tracks match the span's
(:meth:`SongStructure.sources`); copying the target track from the best one is the "structure copy" of issue 29.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from symusic import Score

from midi_rwkv.errors import BarRangeError, TrackIndexError
from midi_rwkv.structure.features import FRAMES_PER_BAR, bar_chroma, grid_step, onset_grids, track_notes
from midi_rwkv.structure.sections import Section, phrase_bars, sections
from midi_rwkv.tokenizer.metre import Bar, real_bars

if TYPE_CHECKING:  # only attributes of a piece are read; importing the tokenizer's view would pull in MidiTok
    from midi_rwkv.tokenizer.score import Piece

# A span "has a repeat" when its best source's match is at least this. Fixed before any measurement (issue 29), from
# the definition alone: 0.9 is an accompaniment that plays the same harmony in nine frames of ten.
REPEAT_THRESHOLD = 0.9



@dataclass(frozen=True)
class Source:
    """A window elsewhere in the song that a span could copy from."""

    start: int  # first real bar (0-based) of the window, which has the span's length
    match: float  # how well the other tracks in the window match the span's other tracks, 0..1
    target_notes: int  # notes of the target track starting in the window (0: it rests there)
    distance: int  # |start - span start| in bars: the window lies inside C bars of context exactly when <= C


def song_bars(score: Score) -> list[Bar]:
    """The real bars of ``score`` from its own time signatures, as a prepared piece counts them (through the last
    onset, with the piece's allowance for quantisation), for a score with notes."""
    last = max((int(track.notes.numpy()["time"].max()) for track in score.tracks if track.notes), default=0)
    return real_bars(score, last + math.ceil(score.ticks_per_quarter / 24))


def has_repeat(sources: Sequence[Source]) -> bool:
    """Whether the best of ``sources`` (ranked best first) matches at least :data:`REPEAT_THRESHOLD`."""
    return bool(sources) and sources[0].match >= REPEAT_THRESHOLD


@dataclass(frozen=True)
class _Track:
    """One track's bar features; B bars."""

    units: np.ndarray  # [B, 16, 12] smoothed chroma, each frame scaled to length 1 (0 where silent)
    silent_frames: np.ndarray  # [B, 16] bool
    grids: np.ndarray  # [B, W] bool onset grids, padded
    cells: np.ndarray  # [B] each bar's own cell count
    onsets: np.ndarray  # [B] notes starting in each bar
    sounding: np.ndarray  # [B] bool: some note sounds in the bar (drums: starts in it)
    drum: bool

    @classmethod
    def of(cls, score: Score, index: int, bars: Sequence[Bar]) -> "_Track":
        notes = track_notes(score, index)
        smoothed = bar_chroma(notes, bars)
        norms = np.linalg.norm(smoothed, axis=-1)  # >= 1/8 wherever a frame sees a note: an average of unit vectors
        silent = np.abs(smoothed).sum(axis=-1) < 1e-6
        units = np.where(silent[..., None], 0.0, smoothed / np.maximum(norms, 1e-12)[..., None])
        grids, cells = onset_grids(notes, bars, grid_step(score.ticks_per_quarter))
        drum = bool(score.tracks[index].is_drum)
        onsets = _onset_counts(notes.time, bars)
        sounding = grids.any(axis=1) if drum else ~silent.all(axis=1)
        return cls(units, silent, grids, cells, onsets, sounding, drum)


def _onset_counts(onsets: np.ndarray, bars: Sequence[Bar]) -> np.ndarray:
    starts = np.array([bar.start for bar in bars])
    index = np.searchsorted(starts, onsets, side="right") - 1
    inside = (index >= 0) & (onsets < bars[-1].end)
    return np.bincount(index[inside], minlength=len(bars))


def chroma_similarity(track: _Track) -> np.ndarray:
    """``[B, B]``: mean over frames of cos(c_i[f], c_j[f]), 1 where both are silent, 0 where one is."""
    units = track.units.reshape(len(track.units), -1)
    silent = track.silent_frames.astype(float)
    # einsum('ifc,jfc->ij') / 16: the sum over frames and pitch classes of products of unit frames is the sum of cosines
    cos = units @ units.T + silent @ silent.T
    return np.clip(cos / FRAMES_PER_BAR, 0.0, 1.0)


def rhythm_similarity(track: _Track) -> np.ndarray:
    """``[B, B]``: 1 - |g_i XOR g_j| / max(Q_i, Q_j); |a XOR b| = |a| + |b| - 2 |a AND b|."""
    grids = track.grids.astype(float)
    count = grids.sum(axis=1)
    xor = count[:, None] + count[None, :] - 2 * grids @ grids.T
    return 1.0 - xor / np.maximum(track.cells[:, None], track.cells[None, :])


_PIECES_KEPT = 8  # songs whose structure is kept (a studio session, an evaluation's pieces in turn)
_PIECES: dict[int, tuple[Piece, "SongStructure"]] = {}  # id(piece) -> (piece, its structure)


@dataclass
class SongStructure:
    """Bar-by-bar self-similarity of every track of one song. Build it with :meth:`of` (or :meth:`of_piece`).

    Tracks are the score's own (``score.tracks[i]``, the numbering the CLI shows); bars are the real bars given.
    """

    bars: list[Bar]
    tracks: list[_Track]
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, score: Score, bars: Sequence[Bar]) -> "SongStructure":
        """Features of every track of ``score`` in ``bars`` (consecutive real bars in ``score``'s ticks)."""
        if not bars:
            raise BarRangeError("a song's structure needs at least one bar")
        bars = list(bars)
        return cls(bars, [_Track.of(score, t, bars) for t in range(len(score.tracks))])

    @classmethod
    def of_score(cls, score: Score) -> "SongStructure":
        """The structure of ``score`` in the bars of its own time signatures (:func:`song_bars`)."""
        return cls.of(score, song_bars(score))

    @classmethod
    def of_piece(cls, piece: Piece) -> "SongStructure":
        """The structure of a prepared piece: its original score in its real bars. Computed once per piece object
        (the last few are kept), so the infiller, the reference rows and the evaluation's split share it."""
        key = id(piece)
        cached = _PIECES.get(key)
        if cached is None or cached[0] is not piece:  # an id can be reused once its piece is gone
            while len(_PIECES) >= _PIECES_KEPT:
                _PIECES.pop(next(iter(_PIECES)))
            cached = _PIECES[key] = (piece, cls.of(piece.original, piece.bars))
        return cached[1]

    @property
    def num_bars(self) -> int:
        return len(self.bars)

    @property
    def num_tracks(self) -> int:
        return len(self.tracks)

    def _check_track(self, track: int) -> _Track:
        if not 0 <= track < len(self.tracks):
            raise TrackIndexError(f"track {track} does not exist (the song has tracks 0-{len(self.tracks) - 1})")
        return self.tracks[track]

    def _matrix(self, kind: str, track: int) -> np.ndarray:
        key = (kind, track)
        if key not in self._cache:
            features = self._check_track(track)
            self._cache[key] = chroma_similarity(features) if kind == "chroma" else rhythm_similarity(features)
        return self._cache[key]

    def chroma(self, track: int) -> np.ndarray:
        """``[B, B]`` chroma similarity of one track's bars (module docstring)."""
        return self._matrix("chroma", track)

    def rhythm(self, track: int) -> np.ndarray:
        """``[B, B]`` rhythm (groove) similarity of one track's bars (module docstring)."""
        return self._matrix("rhythm", track)

    def matching(self, track: int) -> np.ndarray:
        """``[B, B]`` what :meth:`sources` compares a track by: chroma, or rhythm for drums."""
        return self.rhythm(track) if self._check_track(track).drum else self.chroma(track)

    def similarity(self, track: int) -> np.ndarray:
        """``[B, B]`` bar-by-bar self-similarity of one track in [0, 1]: the mean of its chroma and rhythm similarity
        (drums: rhythm alone)."""
        if self._check_track(track).drum:
            return self.rhythm(track)
        return (self.chroma(track) + self.rhythm(track)) / 2

    def sounding_tracks(self) -> list[int]:
        """Tracks with at least one note in the song's bars."""
        return [t for t, features in enumerate(self.tracks) if features.sounding.any()]

    def combined(self, exclude: int | None = None) -> np.ndarray:
        """``[B, B]`` the mean of :meth:`similarity` over the sounding tracks, without ``exclude``; the identity (each
        bar like itself only) when no track is left."""
        tracks = [t for t in self.sounding_tracks() if t != exclude]
        if not tracks:
            return np.eye(self.num_bars)
        return np.mean([self.similarity(t) for t in tracks], axis=0)

    def _check_span(self, span: tuple[int, int]) -> tuple[int, int]:
        start, end = span
        if not 0 <= start < end <= self.num_bars:
            raise BarRangeError(
                f"bars {start + 1}-{end} (counted from 1) are outside the song, which has {self.num_bars} bars"
            )
        return start, end

    def _match(self, track: int, start: int, windows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``[S, n]`` summed similarity and count of the other tracks that count, bar k of the span [start, start + n)
        against bar k of each window."""
        rows = start + np.arange(n)  # [n]
        cols = windows[:, None] + np.arange(n)  # [S, n]
        total = np.zeros(cols.shape)
        counted = np.zeros(cols.shape)
        for t in range(self.num_tracks):
            if t == track:
                continue
            sounding = self.tracks[t].sounding
            counts = sounding[rows][None, :] | sounding[cols]  # silent in both bars: does not count
            total += self.matching(t)[rows[None, :], cols] * counts
            counted += counts
        return total, counted

    def bar_match(self, track: int, span: tuple[int, int], start: int) -> np.ndarray:
        """``[n]`` the match of each bar of the window at ``start`` with the span's bar: the mean over the other tracks
        that count (see :meth:`sources`), 0 where none does."""
        self._check_track(track)
        first, end = self._check_span(span)
        n = end - first
        if not 0 <= start <= self.num_bars - n:
            raise BarRangeError(f"a window of {n} bars at bar {start + 1} does not fit in the song's {self.num_bars}")
        total, counted = self._match(track, first, np.array([start]), n)
        return np.where(counted[0] > 0, total[0] / np.maximum(counted[0], 1), 0.0)

    def earlier_repeats(self, exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """For each bar b, the latest earlier bar a < b whose tracks (all but ``exclude``) best match b's, and that
        match: ``([B] bar or -1, [B] match)``. The match is as in :meth:`sources` (each track's chroma, drums' rhythm;
        a track silent in both bars does not count); a bar with no earlier bar, or nothing to match on, gets -1 and 0.
        A track written from start to end follows its own earlier bars where the song repeats."""
        b = self.num_bars
        total, counted = np.zeros((b, b)), np.zeros((b, b))
        for t in range(self.num_tracks):
            if t == exclude:
                continue
            sounding = self.tracks[t].sounding
            counts = sounding[:, None] | sounding[None, :]
            total += self.matching(t) * counts
            counted += counts
        match = np.where(counted > 0, total / np.maximum(counted, 1), 0.0)
        match = np.where(np.tri(b, k=-1, dtype=bool).T, match, -1.0)  # [a, b]: only a < b
        flipped = match[::-1]  # argmax takes the first maximum: flipped, the latest earlier bar
        best = b - 1 - flipped.argmax(axis=0)
        value = match[best, np.arange(b)]
        keep = value > 0
        return np.where(keep, best, -1), np.where(keep, value, 0.0)

    def sources(self, track: int, span: tuple[int, int], k: int | None = 5) -> list[Source]:
        """Windows to copy ``track``'s bars [span[0], span[1]) from, best first (at most ``k``; None: all).

        Every window [s, s + n) of the span's length n inside the song that does not overlap the span. Its match is the
        mean, over the other tracks t and the window's bars k, of t's chroma similarity (drums: rhythm) of bar
        span[0] + k and bar s + k; a track silent in both bars does not count, and a window where nothing counts
        matches 0 (nothing to match on). Ties go to the nearer window, then the earlier. With no other track, or a
        song too short for a window, there are no sources: ``[]``.

        Raises:
            TrackIndexError: ``track`` is not a track of the song.
            BarRangeError: the span is empty or outside the song.
        """
        target = self._check_track(track)
        start, end = self._check_span(span)
        n = end - start
        windows = np.array([s for s in range(self.num_bars - n + 1) if s + n <= start or s >= end], dtype=int)
        if self.num_tracks < 2 or not len(windows):
            return []
        total, counted = self._match(track, start, windows, n)
        total, counted = total.sum(axis=1), counted.sum(axis=1)
        match = np.where(counted > 0, total / np.maximum(counted, 1), 0.0)
        notes = np.concatenate([[0], np.cumsum(target.onsets)])
        found = [
            Source(int(s), float(m), int(notes[s + n] - notes[s]), abs(int(s) - start)) for s, m in zip(windows, match)
        ]
        found.sort(key=lambda src: (-round(src.match, 9), src.distance, src.start))
        return found if k is None else found[:k]

    def sections(self) -> list[Section]:
        """Sections covering the song, labelled A, B, C, ... in order of first appearance (see :func:`sections`)."""
        if "sections" not in self._cache:
            self._cache["sections"] = sections(self.combined(), phrase_bars(self.bars))
        return self._cache["sections"]
