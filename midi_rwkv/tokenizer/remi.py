"""A piece as REMI base tokens, one list of bars per track, and back to notes.

MidiTok's MMM/REMI encoder writes each track as ``Track_Start Program_p`` followed by bars that
run to the track's own last event. We cut each track into bars on the *piece's* tokenizer-bar
grid (every track gets exactly the same number of bars, padding with empty bars), and split each
bar into a *header* (``Bar_None TimeSig_n/d``) and a *body* (its Position/Tempo/Pitch/Velocity/
Duration tokens). Header and body are the two BPE words of a bar (see ``codec.py``); bar
controls go between them.
"""

from __future__ import annotations

from dataclasses import dataclass

from miditok import MMM, TokSequence
from symusic import Score, Track

from midi_rwkv.tokenizer.score import Piece

BarIds = tuple[tuple[int, ...], tuple[int, ...]]  # (header, body) base ids


@dataclass
class TrackBars:
    """One track of a piece as base ids: its program token and one (header, body) per bar."""

    program: int  # MidiTok program number, -1 for drums
    is_drum: bool
    bars: list[BarIds]

    def notes_in(self, start: int, end: int, vocab: "BaseVocab") -> int:
        """Number of notes in bars [start, end)."""
        return sum(vocab.count_notes(body) for _, body in self.bars[start:end])


class BaseVocab:
    """Lookups on the base (pre-BPE) vocabulary that the sequence builders need."""

    def __init__(self, tokenizer: MMM):
        self.tokenizer = tokenizer
        self.ids = dict(tokenizer.vocab)
        self.tokens = {i: t for t, i in self.ids.items()}
        self.note_ids = frozenset(i for t, i in self.ids.items() if t.startswith(("Pitch_", "PitchDrum_")))
        self.time_sig_ids = frozenset(i for t, i in self.ids.items() if t.startswith("TimeSig_"))
        self.control_ids = frozenset(i for t, i in self.ids.items() if t.startswith("AC"))
        self.bar = self.ids["Bar_None"]

    def __getitem__(self, token: str) -> int:
        return self.ids[token]

    def header(self, numerator: int, denominator: int) -> tuple[int, int]:
        return (self.bar, self.ids[f"TimeSig_{numerator}/{denominator}"])

    def program(self, program: int) -> int:
        return self.ids[f"Program_{program}"]

    def count_notes(self, body) -> int:
        return sum(1 for i in body if i in self.note_ids)


def split_bars(ids, vocab: BaseVocab) -> list[BarIds]:
    """Cut base ids into bars at each ``Bar_None``: (``Bar_None TimeSig``, the rest).

    Ids before the first bar are ignored.
    """
    bars: list[tuple[list[int], list[int]]] = []
    for i in ids:
        if i == vocab.bar:
            bars.append(([i], []))
        elif bars and len(bars[-1][0]) == 1 and i in vocab.time_sig_ids:
            bars[-1][0].append(i)
        elif bars:
            bars[-1][1].append(i)
    return [(tuple(h), tuple(b)) for h, b in bars]


def encode_tracks(piece: Piece, vocab: BaseVocab) -> list[TrackBars]:
    """Every track of ``piece.score`` as bars on the piece's tokenizer-bar grid."""
    sequences = vocab.tokenizer.encode(
        piece.score, no_preprocess_score=True, encode_ids=False, concatenate_track_sequences=False
    )
    headers = [vocab.header(b.numerator, b.denominator) for b in piece.token_bars]
    tracks = []
    for track, seq in zip(piece.score.tracks, sequences, strict=True):
        ids = [vocab[t] for t in seq.tokens]
        program = -1 if track.is_drum else track.program
        if ids[:2] != [vocab["Track_Start"], vocab.program(program)] or ids[-1] != vocab["Track_End"]:
            raise RuntimeError(f"unexpected MidiTok track layout: {seq.tokens[:3]} ... {seq.tokens[-1]}")
        bars = split_bars(ids[2:-1], vocab)
        if any(vocab.count_notes(body) for _, body in bars[len(headers) :]):
            raise RuntimeError(f"{piece.name}: notes after the last bar of the grid")
        bars = bars[: len(headers)] + [(h, ()) for h in headers[len(bars) :]]
        for index, ((header, _), expected) in enumerate(zip(bars, headers)):
            if header != expected:
                raise RuntimeError(f"{piece.name}: bar {index} has header {header}, grid says {expected}")
        tracks.append(TrackBars(program, track.is_drum, bars))
    return tracks


def decode_bars(vocab: BaseVocab, program: int, bars: list[BarIds]) -> Score:
    """Decode one track's bars (starting at tick 0) to a one-track score at MidiTok's resolution.

    Control and special tokens inside the bars are ignored, as REMI decoding ignores them.
    """
    ids = [vocab["Track_Start"], vocab.program(program)]
    for header, body in bars:
        ids.extend(header)
        ids.extend(i for i in body if i not in vocab.control_ids)
    ids.append(vocab["Track_End"])
    seq = TokSequence(ids=ids)
    vocab.tokenizer.complete_sequence(seq)
    return vocab.tokenizer.decode(seq)


def decoded_track(vocab: BaseVocab, program: int, bars: list[BarIds]) -> tuple[Track, int]:
    """The single track of :func:`decode_bars` (empty if no note) and its ticks per quarter."""
    score = decode_bars(vocab, program, bars)
    if score.tracks:
        return score.tracks[0], score.ticks_per_quarter
    return Track(program=max(program, 0), is_drum=program == -1), score.ticks_per_quarter
