"""Loading MIDI and preparing it for the tokenizer, keeping a map back to the user's file.

A :class:`Piece` holds two views of one piece of music:
  * ``original``: the score as loaded (native resolution, unquantised) — what a user sees and
    what infills are merged back into;
  * ``score``: the tokenizer's view — pitches outside the vocabulary dropped (and counted),
    tracks without a program token or notes dropped, time signatures written with the
    tokenizer's metres (see ``metre.py``), then MidiTok's preprocessing (resampling to 12
    positions per beat, quantisation of onsets, durations, velocities and tempos).
Tracks and bars are addressed by the user's numbering; the piece maps them to the tokenizer's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from miditok import MMM
from symusic import Score, TimeSignature

from midi_rwkv.errors import BarRangeError, EmptyScoreError, MidiFileError, TrackIndexError
from midi_rwkv.tokenizer.metre import Bar, real_bars, split_bars

_TAG = "\x00midi-rwkv-track-"  # temporary track names that survive MidiTok's track filtering


def load_score(source: str | Path | bytes, name: str | None = None) -> Score:
    """Read a MIDI file (a path or its bytes) and check that it has notes; ``name`` is what messages call it.

    Raises:
        MidiFileError: missing or unreadable file.
        EmptyScoreError: a readable file without any note.
    """
    name = name or ("<bytes>" if isinstance(source, bytes) else str(source))
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise MidiFileError(f"{name}: no such file")
    try:
        score = Score.from_midi(source) if isinstance(source, bytes) else Score(str(source))
    except Exception as err:  # symusic raises RuntimeError/ValueError with low-level messages
        raise MidiFileError(f"{name}: not a readable MIDI file ({err})") from None
    if score.note_num() == 0:
        raise EmptyScoreError(f"{name}: the file has no notes")
    return score


@dataclass
class Piece:
    """A score prepared for tokenization. Build it with :func:`prepare_piece`."""

    original: Score
    score: Score
    track_ids: list[int]  # original track index of each track of ``score``
    bars: list[Bar]  # real bars, in ``original`` ticks
    token_bars: list[Bar]  # tokenizer bars, in ``score`` ticks
    first_token_bar: list[int]  # real bar i covers token bars [first[i], first[i + 1])
    dropped_notes: dict[str, int] = field(default_factory=dict)  # reason -> count
    name: str = ""

    @property
    def num_bars(self) -> int:
        return len(self.bars)

    def track_index(self, original_track: int) -> int:
        """The tokenizer-view index of the user's track ``original_track``."""
        count = len(self.original.tracks)
        if not 0 <= original_track < count:
            raise TrackIndexError(
                f"{self.name}: track {original_track} does not exist (the file has tracks 0-{count - 1})"
            )
        if original_track not in self.track_ids:
            raise TrackIndexError(f"{self.name}: track {original_track} has no notes the tokenizer can represent")
        return self.track_ids.index(original_track)

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        """Tokenizer bars covering the real bars [start, end)."""
        if start >= end:
            raise BarRangeError(f"{self.name}: the bar span is empty (start {start} >= end {end})")
        if start < 0 or end > self.num_bars:
            raise BarRangeError(
                f"{self.name}: bars {start + 1}-{end} (counted from 1) are outside the piece, "
                f"which has {self.num_bars} bars"
            )
        return self.first_token_bar[start], self.first_token_bar[end]

    def _notes_per_bar(self, track) -> np.ndarray:
        """Notes of a tokenizer-view track that start in each tokenizer bar."""
        starts = np.array([bar.start for bar in self.token_bars])
        onsets = track.notes.numpy()["time"]
        bars = np.maximum(np.searchsorted(starts, onsets, side="right") - 1, 0)
        return np.bincount(bars, minlength=len(starts))

    def densest_bar(self) -> int:
        """The most notes that start in one tokenizer bar of one track (in the tokenizer's view)."""
        return max((int(self._notes_per_bar(t).max()) for t in self.score.tracks if t.notes), default=0)

    def longest_rest(self, track: int | None = None) -> int:
        """The most consecutive tokenizer bars in which tokenizer-view ``track`` starts no note (None: the
        longest of any track's)."""
        tracks = self.score.tracks if track is None else [self.score.tracks[track]]
        longest = 0
        for t in tracks:
            run = 0
            for count in self._notes_per_bar(t):
                run = run + 1 if count == 0 else 0
                longest = max(longest, run)
        return longest


def _in_range(track, low: int, high: int) -> bool:
    return all(low <= note.pitch <= high for note in track.notes)


def _filter_tracks(score: Score, tokenizer: MMM) -> tuple[Score, list[int], dict[str, int]]:
    """Drop notes and tracks the vocabulary cannot hold, tagging kept tracks with their index."""
    config = tokenizer.config
    dropped = {"pitch outside range": 0, "track without program token": 0}
    kept = Score(score.ticks_per_quarter)
    kept.tempos = score.tempos.copy()
    kept.time_signatures = score.time_signatures.copy()
    ids = []
    for index, track in enumerate(score.tracks):
        if track.note_num() == 0:
            continue
        program = -1 if track.is_drum else track.program
        if program not in config.programs:
            dropped["track without program token"] += track.note_num()
            continue
        low, high = config.drums_pitch_range if track.is_drum else config.pitch_range
        track = track.copy()
        if not _in_range(track, low, high):
            before = track.note_num()
            track.notes.filter(lambda n: low <= n.pitch <= high, inplace=True)
            dropped["pitch outside range"] += before - track.note_num()
        if track.note_num() == 0:
            continue
        track.name = f"{_TAG}{index}"
        track.controls.clear()
        track.pedals.clear()
        track.pitch_bends.clear()
        track.lyrics.clear()
        kept.tracks.append(track)
        ids.append(index)
    return kept, ids, {k: v for k, v in dropped.items() if v}


def _last_onset(score: Score) -> int:
    return max(int(track.notes.numpy()["time"].max()) for track in score.tracks)


def prepare_piece(score: Score, tokenizer: MMM, name: str = "") -> Piece:
    """Build the tokenizer's view of ``score`` (see the module docstring).

    Raises:
        EmptyScoreError: no note survives the vocabulary's filters.
        UnsupportedMetreError: a time signature cannot be written with the tokenizer's metres.
    """
    if score.note_num() == 0:
        raise EmptyScoreError(f"{name}: the file has no notes")
    work, ids, dropped = _filter_tracks(score, tokenizer)
    if not work.tracks:
        raise EmptyScoreError(f"{name}: no track has notes the tokenizer can represent")
    # Quantisation may move a last onset up to half a grid step later, into the next bar.
    end = _last_onset(work) + math.ceil(score.ticks_per_quarter / 24)
    bars = real_bars(score, end)
    supported = frozenset(tokenizer.time_signatures)
    token_bars, first = split_bars(bars, supported)
    work.time_signatures.clear()
    previous = None
    for bar in token_bars:
        if (bar.numerator, bar.denominator) != previous:
            work.time_signatures.append(TimeSignature(bar.start, bar.numerator, bar.denominator))
            previous = (bar.numerator, bar.denominator)
    prepared = tokenizer.preprocess_score(work)
    by_tag = {track.name: track for track in prepared.tracks}
    tracks, kept_ids = [], []
    for index in ids:
        track = by_tag.get(f"{_TAG}{index}")
        if track is not None and track.note_num():
            track.name = score.tracks[index].name
            tracks.append(track)
            kept_ids.append(index)
    if not tracks:
        raise EmptyScoreError(f"{name}: no notes remain after quantisation")
    prepared.tracks.clear()
    prepared.tracks.extend(tracks)
    scale = prepared.ticks_per_quarter / score.ticks_per_quarter
    token_bars_prepared = [
        Bar(round(b.start * scale), round(b.end * scale), b.numerator, b.denominator) for b in token_bars
    ]
    return Piece(score, prepared, kept_ids, bars, token_bars_prepared, first, dropped, name)
