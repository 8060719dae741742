"""Random training examples with the paper's knobs (docs/original-release.md#training-examples), built with
the canonical encoding.

What differs from the original, on purpose:
  * the kept tracks stay in the file's order (the original shuffles them in training but not at
    inference, docs/original-release.md#track-order);
  * bar controls describe each bar alone, and every masked bar has them
    (docs/original-release.md#bar-controls), except in a share of examples (``free_ratio``) that have
    none, so that the model can also infill freely;
  * track infill really moves the track to the end, after ``Infill_Track``
    (docs/original-release.md#track-infill);
  * the window keeps the section whole; a section that cannot fit is shortened, never cut
    (docs/original-release.md#context-window);
  * augmentation happens once per attempt on a fresh copy, never cumulatively
    (docs/original-release.md#augmentation-retries).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from miditok.constants import MIDI_INSTRUMENTS
from symusic import Note, Score

from midi_rwkv.errors import MidiRwkvError, SequenceTooLongError
from midi_rwkv.tokenizer.sequences import InfillSequence
from midi_rwkv.tokenizer.infill_tokenizer import InfillTokenizer


@dataclass
class ExampleConfig:
    """Knobs of the random example builder; defaults are the paper's (docs/original-release.md#training-examples)."""

    max_len: int = 2048  # tokens per example, prompt and target together
    bar_infill_ratio: float = 0.75  # probability of a bar-infill example (else track infill)
    span_ratio: tuple[float, float] = (0.1, 0.4)  # masked bars as a share of the track's bars
    span_choices: tuple[int, ...] = (1, 2, 4, 8)  # lower bound on masked bars, drawn from these
    track_ratio: tuple[float, float] = (0.4, 1.0)  # share of tracks kept
    pitch_offset: int = 6  # pitch shifts drawn from -6..6 semitones (within each program's range)
    velocity_offset: int = 2  # velocity shifts drawn from -2..2
    attempts: int = 4  # tries before giving up on a piece
    free_ratio: float = 0.1  # bar-infill examples without bar controls (not in the paper: it makes --free work)

    def __post_init__(self):
        if not 0.0 <= self.bar_infill_ratio <= 1.0:
            raise ValueError("bar_infill_ratio must be in [0, 1]")
        if not 0.0 <= self.free_ratio <= 1.0:
            raise ValueError("free_ratio must be in [0, 1]")
        if not 0.0 < self.span_ratio[0] <= self.span_ratio[1] <= 1.0:
            raise ValueError("span_ratio must satisfy 0 < low <= high <= 1")
        if not 0.0 < self.track_ratio[0] <= self.track_ratio[1] <= 1.0:
            raise ValueError("track_ratio must satisfy 0 < low <= high <= 1")
        if self.max_len < 16:
            raise ValueError("max_len must be at least 16")


def _tessitura(score: Score, pitch_range: tuple[int, int]) -> range:
    """Pitch offsets that keep every melodic note inside its program's General MIDI range."""
    low, high = -128, 128
    for track in score.tracks:
        if track.is_drum or not track.notes:
            continue
        pitches = track.notes.numpy()["pitch"]
        allowed = MIDI_INSTRUMENTS[track.program]["pitch_range"]
        low = max(low, max(allowed.start, pitch_range[0]) - int(pitches.min()))
        high = min(high, min(allowed.stop - 1, pitch_range[1]) - int(pitches.max()))
    return range(low, high + 1)


def augment(score: Score, pitch: int, velocity: int) -> Score:
    """A copy with melodic pitches shifted by ``pitch`` and all velocities by ``velocity`` (clipped to 1..127)."""
    out = score.copy()
    for track in out.tracks:
        if not track.notes:
            continue
        arrays = track.notes.numpy()
        if not track.is_drum:
            arrays["pitch"] = arrays["pitch"] + pitch
        arrays["velocity"] = np.clip(arrays["velocity"].astype(np.int32) + velocity, 1, 127).astype(
            arrays["velocity"].dtype
        )
        track.notes = Note.from_numpy(**arrays)
    return out


class ExampleBuilder:
    """Draws one random infilling example from a score.

    Example:
        >>> builder = ExampleBuilder(InfillTokenizer(), ExampleConfig(max_len=1024))
        >>> seq = builder(score, random.Random(0))  # None when the piece gives no example
    """

    def __init__(self, tokenizer: InfillTokenizer, config: ExampleConfig | None = None):
        self.tokenizer = tokenizer
        self.config = config or ExampleConfig()

    def _subsample(self, score: Score, rng: random.Random) -> Score:
        tracks = [i for i, t in enumerate(score.tracks) if t.notes]
        keep = max(1, round(len(tracks) * rng.uniform(*self.config.track_ratio)))
        chosen = sorted(rng.sample(tracks, min(keep, len(tracks))))
        out = score.copy()
        out.tracks.clear()
        out.tracks.extend([score.tracks[i].copy() for i in chosen])
        return out

    def _augment(self, score: Score, rng: random.Random) -> Score:
        c = self.config
        offsets = [o for o in _tessitura(score, self.tokenizer.miditok.config.pitch_range) if abs(o) <= c.pitch_offset]
        if not offsets:
            return score
        return augment(score, rng.choice(offsets), rng.randint(-c.velocity_offset, c.velocity_offset))

    def _bar_example(self, tok: InfillTokenizer, enc, rng: random.Random) -> InfillSequence:
        piece = enc.piece
        c = self.config
        track = rng.randrange(len(enc.tracks))
        last = max(
            i
            for i in range(piece.num_bars)
            if enc.has_notes(track, piece.first_token_bar[i], piece.first_token_bar[i + 1], tok.codec)
        )
        n_bars = last + 1
        span = max(min(rng.choice(c.span_choices), n_bars), round(n_bars * rng.uniform(*c.span_ratio)))
        start = rng.randrange(n_bars - span + 1)
        free = rng.random() < c.free_ratio
        while True:
            try:
                return tok.bar_infill(
                    enc, piece.track_ids[track], (start, start + span), max_len=c.max_len, rng=rng, free=free
                )
            except SequenceTooLongError:
                if span == 1:
                    raise
                span //= 2  # shorten the section rather than cut it

    def __call__(self, score: Score, rng: random.Random) -> InfillSequence | None:
        """One example, or ``None`` when every attempt fails (the piece is then worth skipping)."""
        tok = self.tokenizer
        for _ in range(self.config.attempts):
            try:
                work = self._augment(self._subsample(score, rng), rng)
                enc = tok.encode(tok.prepare(work))
                if len(enc.tracks) == 1 or rng.random() < self.config.bar_infill_ratio:
                    return self._bar_example(tok, enc, rng)
                track = enc.piece.track_ids[rng.randrange(len(enc.tracks))]
                return tok.track_infill(enc, track, max_len=self.config.max_len, rng=rng)
            except MidiRwkvError:
                continue
        return None
