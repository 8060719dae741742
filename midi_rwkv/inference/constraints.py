"""Bar-by-bar control of a generated infill section, in token ids (used by the generator).

The model decides where a bar ends: when it samples any token that starts a bar (``Bar_None``),
that token is replaced by the next bar's real header (its time signature comes from the piece,
never from the model) followed by the bar's controls. Once the requested number of bars is done,
the next bar token becomes ``FillBar_End``. A bar may hold at most ``max_notes`` notes: once it is
full, its last note may be finished (velocity, duration) and then a bar must start (a small model
can fall into a loop that writes hundreds of notes at one position). The limit can differ per bar:
a whole track's bars are bounded by its own density control, and with strict density (on by
default) each infilled bar by its own. Tokens that cannot occur inside a bar body (special tokens,
controls, programs, stray time signatures, ``FillBar_End`` itself, and pieces that decode to
nothing) are banned. The same rule writes a whole track, ending with ``Track_End``. This fixes the original's
sampler, which never counts bars and always bans ``FillBar_End``
(docs/original-release.md#infill-constraints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from midi_rwkv.inference.generator import Constraint
from midi_rwkv.tokenizer.codec import Codec
from midi_rwkv.tokenizer.mmm import SPECIAL_TOKENS

_BODY_FORBIDDEN = tuple(SPECIAL_TOKENS)  # no special token can occur inside a bar body


@dataclass
class TokenTables:
    """Per model id: does it start a bar, may it be sampled inside a bar body, and the pitches it plays."""

    starts_bar: Tensor  # [V] bool
    banned: Tensor  # [V] bool
    fill_end: int
    track_end: int
    pitch_low: Tensor | None = None  # [V] lowest pitched (non-drum) note the token writes; 128 when none
    pitch_high: Tensor | None = None  # [V] highest; -1 when none
    drum_pitch: Tensor | None = None  # [V] bool: the token writes a drum hit (PitchDrum_*)
    notes: Tensor | None = None  # [V] int: how many notes the token writes (its Pitch_* and PitchDrum_* ids)
    note_tail: Tensor | None = None  # [V] bool: the token only finishes a note (Velocity_* and Duration_* ids)
    leaves_open: Tensor | None = None  # [V] bool: its last note has no duration yet (the next tokens finish it)
    closes: Tensor | None = None  # [V] bool: a duration before any pitch, which finishes the note left open before it
    finishes: Tensor | None = None  # [V] int: notes the token writes whole (a pitch, then its duration, inside it)
    bar: int = -1  # the plain bar line (Bar_None; its model id is its base id)

    def outside(self, low: int, high: int) -> Tensor:
        """[V] bool: tokens a pitched part in register [low, high] must not write: a pitch outside it, or a drum
        hit (which a pitched track would decode as a note of that pitch). Pitch-less tokens never are."""
        return (self.pitch_low < low) | (self.pitch_high > high) | self.drum_pitch

    @classmethod
    def build(cls, codec: Codec) -> "TokenTables":
        vocab = codec.vocab
        names = vocab.tokens
        forbidden = {vocab[t] for t in _BODY_FORBIDDEN} | set(vocab.control_ids)
        starts, banned, lows, highs, drums, notes, tails, open_, closes, finishes = ([] for _ in range(10))
        pitch = {i: int(t.split("_")[1]) for t, i in vocab.ids.items() if t.startswith("Pitch_")}
        drum = {i for t, i in vocab.ids.items() if t.startswith("PitchDrum_")}
        for piece in codec.pieces:
            played = [pitch[i] for i in piece if i in pitch]
            notes.append(len(played) + sum(i in drum for i in piece))
            kinds = [names[i].split("_")[0] for i in piece]
            tails.append(bool(kinds) and all(kind in ("Velocity", "Duration") for kind in kinds))
            pitches = [k for k, kind in enumerate(kinds) if kind in ("Pitch", "PitchDrum")]
            open_.append(bool(pitches) and "Duration" not in kinds[pitches[-1]:])
            closes.append("Duration" in kinds[: pitches[0] if pitches else len(kinds)])
            ends = pitches[1:] + [len(kinds)]
            finishes.append(sum("Duration" in kinds[k:end] for k, end in zip(pitches, ends)))
            lows.append(min(played, default=128))
            highs.append(max(played, default=-1))
            drums.append(any(i in drum for i in piece))
            starts.append(bool(piece) and piece[0] == vocab.bar)
            bad = (
                not piece
                or any(i in forbidden or names[i].startswith("Program_") for i in piece)
                or (piece[0] in vocab.time_sig_ids)  # a time signature outside a header
                or vocab.bar in piece[1:]  # a bar line inside a token (only in tokenizers with cross-bar merges)
            )
            banned.append(bad and not (piece and piece[0] == vocab.bar))
        return cls(torch.tensor(starts), torch.tensor(banned), vocab["FillBar_End"], vocab["Track_End"],
                   torch.tensor(lows), torch.tensor(highs), torch.tensor(drums), torch.tensor(notes),
                   torch.tensor(tails), torch.tensor(open_), torch.tensor(closes), torch.tensor(finishes),
                   bar=vocab.bar)


class BarInfillConstraint(Constraint):
    """Generates exactly ``len(bars)`` bars: the first is already open when generation starts.

    ``end`` closes the section: ``FillBar_End`` for bar infill (the default), ``Track_End`` when a whole
    track is written (track infill: its bars carry no controls, the track's controls are in the prompt).
    ``max_notes``: notes a bar may hold, one number for every bar or one per bar (None: any number); a full bar can
    only finish its last note (a note is counted at its pitch, before its velocity and duration) and then start a bar.
    ``max_rest``: the most consecutive bars without a note (None: any number); after that many, a bar cannot end
    before it has a note (a small model can fall into writing nothing but bar lines for a whole track).
    """

    def __init__(
        self,
        tables: TokenTables,
        bars: list[tuple[tuple[int, ...], tuple[int, ...]]],
        end: int | None = None,
        register: tuple[int, int] | None = None,
        max_notes: int | Sequence[int | None] | None = None,
        max_rest: int | None = None,
    ):
        self.tables = tables
        self.bars = bars  # (header ids, control ids) of each masked bar
        self.end = tables.fill_end if end is None else end
        self.current = 0  # the bar being written
        self.done = False
        # ``register``: only pitches in [low, high] may be written (the track's register, see Infiller)
        self._banned = tables.banned if register is None else tables.banned | tables.outside(*register)
        if isinstance(max_notes, Sequence):
            if len(max_notes) != len(bars):
                raise ValueError(f"{len(max_notes)} note limits for {len(bars)} bars")
            self.limits = list(max_notes)
        else:
            self.limits = [max_notes] * len(bars)
        self.notes = 0  # written in the current bar
        self.finished = 0  # of those, notes with their duration
        self.open = False  # the last note written still lacks its duration
        self.max_rest = max_rest
        self.rest = 0  # bars without a note just before the current one

    @property
    def max_notes(self) -> int | None:
        """Notes the bar being written may hold."""
        return self.limits[self.current] if self.current < len(self.limits) else None

    @property
    def _resting(self) -> bool:
        """The current bar has no finished note yet: pitches without their durations decode to nothing."""
        return self.finished == 0

    def banned(self) -> Tensor:
        banned = self._within_limit()
        if self.max_rest is not None and self.rest >= self.max_rest and self._resting and self.max_notes != 0:
            banned = banned | self.tables.starts_bar  # rested long enough: a whole note before the bar may end
        return banned

    def _within_limit(self) -> Tensor:
        """The banned tokens, with those that would overfill the bar (``max_notes``)."""
        if self.max_notes is None:
            return self._banned
        room = self.max_notes - self.notes
        if room <= 0:  # full: finish the last note, if it is still open, then start a bar
            allowed = (self.tables.starts_bar | self.tables.note_tail) if self.open else self.tables.starts_bar
            return self._banned | ~allowed
        return self._banned | (self.tables.notes > room)

    def after_sample(self, token: int) -> list[int]:
        if not self.tables.starts_bar[token]:
            if self.tables.notes is not None:  # notes are counted for the note limit and the rest limit
                written = int(self.tables.notes[token])
                self.notes += written
                self.finished += int(self.open and self.tables.closes[token]) + int(self.tables.finishes[token])
                if written:
                    self.open = bool(self.tables.leaves_open[token])
                elif self.tables.closes[token]:
                    self.open = False
            return [token]
        self.current += 1
        self.rest = self.rest + 1 if self._resting else 0
        self.notes, self.finished, self.open = 0, 0, False
        if self.current < len(self.bars):
            header, controls = self.bars[self.current]
            return [*header, *controls]
        self.done = True
        return [self.end]
