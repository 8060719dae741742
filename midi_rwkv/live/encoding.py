"""One bar of one track <-> model ids, each bar encoded once, as the whole piece's encoding would write it.

A bar is tokenized on its own: a one-track score holding the bar (after an empty bar of the same metre that takes
MidiTok's default tempo, unless it is the song's first bar) goes through the tokenizer's own preparation and
encoding, so its ids are the ids that bar has inside the whole song (a tempo token only where the tempo changes).
Written bars are decoded with the piece's own headers, as :mod:`midi_rwkv.tokenizer.merge` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Note, Score, Tempo, TimeSignature, Track

from midi_rwkv.errors import EmptyScoreError
from midi_rwkv.live.bars import GridBar, LiveNote
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.contract import BarIds
from midi_rwkv.tokenizer.controls import DURATIONS, BarControls
from midi_rwkv.tokenizer.merge import split_section
from midi_rwkv.tokenizer.metre import decompose
from midi_rwkv.tokenizer.remi import decoded_track


@dataclass(frozen=True)
class EncodedBar:
    """One real bar of one track: its tokenizer bars in model ids, the notes starting in each, and their controls."""

    bars: tuple[BarIds, ...]
    notes: tuple[int, ...]
    controls: tuple[BarControls, ...]

    @property
    def count(self) -> int:
        return sum(self.notes)

    @property
    def cost(self) -> int:
        return sum(len(h) + len(b) for h, b in self.bars)


class BarEncoder:
    """Encodes and decodes single bars for one tokenizer, at the take's resolution ``tpq``."""

    def __init__(self, tokenizer: InfillTokenizer, tpq: int):
        self.tokenizer, self.tpq = tokenizer, tpq
        self.codec = tokenizer.codec
        self.supported = frozenset(tokenizer.miditok.time_signatures)
        self._empty: dict[tuple[int, int, bool], EncodedBar] = {}

    def metres(self, numerator: int, denominator: int) -> tuple[tuple[int, int], ...]:
        """The tokenizer bars a real bar of this metre is written as (UnsupportedMetreError where none add up)."""
        return decompose(numerator, denominator, self.supported)

    def empty(self, numerator: int, denominator: int, is_drum: bool) -> EncodedBar:
        """A bar without notes: its headers alone."""
        key = (numerator, denominator, is_drum)
        if key not in self._empty:
            metres = self.metres(numerator, denominator)
            headers = self.codec.encode_words([self.codec.vocab.header(n, d) for n, d in metres])
            rest = BarControls(0) if is_drum else BarControls(0, None, (False,) * len(DURATIONS))
            self._empty[key] = EncodedBar(tuple((h, ()) for h in headers), (0,) * len(metres), (rest,) * len(metres))
        return self._empty[key]

    def encode(self, bar: GridBar, program: int, is_drum: bool, notes: list[tuple[int, int, int, int]],
               tempo: float | None) -> EncodedBar:
        """Bar ``bar`` of a track (``notes``: onset from the bar's start, duration, pitch, velocity, in ticks).

        ``tempo``: the tempo that starts at this bar, where it changes there (the song's first bar always has one).
        """
        if not notes:
            return self.empty(bar.numerator, bar.denominator, is_drum)
        length = bar.end - bar.start
        lead = 0 if bar.index == 0 else length  # an empty bar before, which takes MidiTok's default tempo
        score = Score(self.tpq)
        score.time_signatures.append(TimeSignature(0, bar.numerator, bar.denominator))
        if lead:
            score.tempos.append(Tempo(0, 120.0))
        if tempo is not None:
            score.tempos.append(Tempo(lead, tempo))
        track = Track(program=0 if is_drum else program, is_drum=is_drum)
        for onset, duration, pitch, velocity in notes:
            track.notes.append(Note(lead + onset, max(1, duration), pitch, velocity))
        score.tracks.append(track)
        try:
            piece = self.tokenizer.prepare(score, "<live bar>")
        except EmptyScoreError:  # no note the vocabulary can write
            return self.empty(bar.numerator, bar.denominator, is_drum)
        enc = self.tokenizer.encode(piece)
        real = 0 if bar.index == 0 else 1
        span = (piece.first_token_bar[real], piece.first_token_bar[real + 1])
        rows = enc.bars[0][span[0]:span[1]]
        counts = enc.notes[0][span[0]:span[1]]
        return EncodedBar(tuple((tuple(h), tuple(b)) for h, b in rows), tuple(counts),
                          tuple(enc.bar_controls(0, span)))

    def decode(self, section: list[int], bar: GridBar, program: int) -> list[LiveNote]:
        """The notes of a written bar: ``section`` holds the model ids from its first header on (the prompt's tail
        after ``FillBar_Start``, then what was generated). Notes starting after the bar's end are dropped."""
        vocab = self.codec.vocab
        metres = self.metres(bar.numerator, bar.denominator)
        written = split_section(self.codec, section)
        bodies = [b for _, b in written[: len(metres)]] + [()] * max(0, len(metres) - len(written))
        track, tpq = decoded_track(vocab, program, [(vocab.header(n, d), b) for (n, d), b in zip(metres, bodies)])
        length = (bar.end - bar.start) / self.tpq
        out = []
        for note in track.notes:
            start = note.time / tpq
            if start < length:
                out.append(LiveNote(int(note.pitch), start, max(note.duration, 1) / tpq, max(1, int(note.velocity))))
        return sorted(out, key=lambda n: (n.start, n.pitch))
