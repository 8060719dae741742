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
    (docs/original-release.md#augmentation-retries), and shifts pitches only: velocities stay as they are
    (docs/original-release.md#velocity-jitter).

The drawing (which tracks, which shift, which span, which kind) is one piece of code,
:class:`ExampleDrawer`, for two sources: a MIDI score (:class:`ExampleBuilder`, MidiTok on every draw) and a
compiled corpus (``midi_rwkv.data.compiled``, arrays only), so both give the same examples for the same seeds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from midi_rwkv.errors import MidiRwkvError, SequenceTooLongError
from midi_rwkv.tokenizer.sequences import (
    LAYOUTS,
    EncodedPiece,
    InfillSequence,
    build_bar_infill,
    build_track_infill,
)

if TYPE_CHECKING:  # MidiTok and symusic only for MIDI sources (a compiled corpus trains without them)
    from symusic import Score

    from midi_rwkv.tokenizer.contract import EncodedBars, TokenCodec
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
    velocity_offset: int = 0  # velocity shifts -v..v (the paper: 2; docs/original-release.md#velocity-jitter)
    attempts: int = 4  # tries before giving up on a piece
    free_ratio: float = 0.1  # bar-infill examples without bar controls (not in the paper: it makes --free work)
    layout: str = "file-order"  # where bar infill writes the infilled track: sequences.LAYOUTS

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
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}")


def program_range(program: int, pitch_range: tuple[int, int]) -> tuple[int, int]:
    """The pitches a melodic track of ``program`` may take: its General MIDI range within the vocabulary's."""
    from miditok.constants import MIDI_INSTRUMENTS

    allowed = MIDI_INSTRUMENTS[program]["pitch_range"]
    return max(allowed.start, pitch_range[0]), min(allowed.stop - 1, pitch_range[1])


def track_shifts(pitches: np.ndarray, allowed: tuple[int, int]) -> tuple[int, int]:
    """The (lowest, highest) pitch shift that keeps every one of a track's ``pitches`` inside ``allowed``."""
    return allowed[0] - int(pitches.min()), allowed[1] - int(pitches.max())


def _tessitura(tracks, pitch_range: tuple[int, int]) -> tuple[int, int]:
    """(lowest, highest) pitch shift that keeps every melodic note of ``tracks`` inside its program's range."""
    low, high = -128, 128
    for track in tracks:
        if track.is_drum or not track.notes:
            continue
        lo, hi = track_shifts(track.notes.numpy()["pitch"], program_range(track.program, pitch_range))
        low, high = max(low, lo), min(high, hi)
    return low, high


def augment(score: Score, pitch: int, velocity: int) -> Score:
    """A copy with melodic pitches shifted by ``pitch`` and all velocities by ``velocity`` (clipped to 1..127)."""
    from symusic import Note

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


class ExampleDrawer:
    """Draws one random infilling example from a source piece; subclasses say what a source is.

    A subclass implements :meth:`encode`: the source with only ``tracks`` kept (indices among its
    tracks that have notes) and shifted by ``shift`` = (semitones, velocity), as
    :class:`~midi_rwkv.tokenizer.contract.EncodedBars` that ``codec`` wrote. Everything random is drawn here, in one
    order, from the ``rng`` given.
    """

    def __init__(self, codec: TokenCodec, config: ExampleConfig | None = None):
        self.codec = codec
        self.config = config or ExampleConfig()

    def played_tracks(self, source) -> list[int]:
        """Indices of the source's tracks that have notes (the candidates for keeping)."""
        raise NotImplementedError

    def shift_range(self, source, tracks: list[int]) -> tuple[int, int]:
        """(lowest, highest) pitch shift that keeps the melodic ``tracks`` in their ranges."""
        raise NotImplementedError

    def encode(self, source, tracks: list[int], shift: tuple[int, int] | None) -> EncodedBars:
        """The source with only ``tracks`` kept, shifted by ``shift`` (None: not shifted)."""
        raise NotImplementedError

    def _choose_tracks(self, source, rng: random.Random) -> list[int]:
        tracks = self.played_tracks(source)
        keep = max(1, round(len(tracks) * rng.uniform(*self.config.track_ratio)))
        return sorted(rng.sample(tracks, min(keep, len(tracks))))

    def _choose_shift(self, source, tracks: list[int], rng: random.Random) -> tuple[int, int] | None:
        c = self.config
        low, high = self.shift_range(source, tracks)
        offsets = [o for o in range(low, high + 1) if abs(o) <= c.pitch_offset]
        if not offsets:
            return None
        return rng.choice(offsets), rng.randint(-c.velocity_offset, c.velocity_offset)

    def _bar_example(self, enc: EncodedBars, rng: random.Random) -> InfillSequence:
        piece = enc.piece
        c = self.config
        track = rng.randrange(len(enc.tracks))
        last = max(
            i
            for i in range(piece.num_bars)
            if enc.has_notes(track, piece.first_token_bar[i], piece.first_token_bar[i + 1])
        )
        n_bars = last + 1
        span = max(min(rng.choice(c.span_choices), n_bars), round(n_bars * rng.uniform(*c.span_ratio)))
        start = rng.randrange(n_bars - span + 1)
        free = rng.random() < c.free_ratio
        while True:
            try:
                return build_bar_infill(
                    enc, self.codec, piece.track_ids[track], (start, start + span), max_len=c.max_len, rng=rng,
                    free=free, layout=c.layout,
                )
            except SequenceTooLongError:
                if span == 1:
                    raise
                span //= 2  # shorten the section rather than cut it

    def __call__(self, source, rng: random.Random) -> InfillSequence | None:
        """One example, or ``None`` when every attempt fails (the piece is then worth skipping)."""
        for _ in range(self.config.attempts):
            try:
                tracks = self._choose_tracks(source, rng)
                enc = self.encode(source, tracks, self._choose_shift(source, tracks, rng))
                if len(enc.tracks) == 1 or rng.random() < self.config.bar_infill_ratio:
                    return self._bar_example(enc, rng)
                track = enc.piece.track_ids[rng.randrange(len(enc.tracks))]
                return build_track_infill(enc, self.codec, track, max_len=self.config.max_len, rng=rng)
            except MidiRwkvError:
                continue
        return None


class ExampleBuilder(ExampleDrawer):
    """Examples from a MIDI score (MidiTok runs on every draw).

    Example:
        >>> builder = ExampleBuilder(InfillTokenizer(), ExampleConfig(max_len=1024))
        >>> seq = builder(score, random.Random(0))  # None when the piece gives no example
    """

    def __init__(self, tokenizer: InfillTokenizer, config: ExampleConfig | None = None):
        super().__init__(tokenizer.codec, config)
        self.tokenizer = tokenizer

    def played_tracks(self, score: Score) -> list[int]:
        return [i for i, t in enumerate(score.tracks) if t.notes]

    def shift_range(self, score: Score, tracks: list[int]) -> tuple[int, int]:
        return _tessitura([score.tracks[i] for i in tracks], self.tokenizer.miditok.config.pitch_range)

    def encode(self, score: Score, tracks: list[int], shift: tuple[int, int] | None) -> EncodedPiece:
        work = _keep(score, tracks)
        if shift is not None:
            work = augment(work, *shift)
        return self.tokenizer.encode(self.tokenizer.prepare(work))


def _keep(score: Score, tracks: list[int]) -> Score:
    """A copy with the notes of ``tracks`` only; the other tracks stay, empty, so that the encoded piece numbers its
    tracks as the file does (``track_ids``, as a compiled corpus does), and preparing it drops them."""
    out = score.copy()
    kept = set(tracks)
    for index, track in enumerate(out.tracks):
        if index not in kept:
            track.notes.clear()
    return out
