"""Bar-by-bar control of a generated infill section, in token ids (used by the generator).

The model decides where a bar ends: when it samples any token that starts a bar (``Bar_None``),
that token is replaced by the next bar's real header (its time signature comes from the piece,
never from the model) followed by the bar's controls. Once the requested number of bars is done,
the next bar token becomes ``FillBar_End``. Tokens that cannot occur inside a bar body (special
tokens, controls, programs, stray time signatures, ``FillBar_End`` itself, and pieces that decode to
nothing) are banned. The same rule writes a whole track, ending with ``Track_End``. This fixes the
original's sampler, which never counts bars and always bans ``FillBar_End``
(docs/original-release.md#infill-constraints).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from midi_rwkv.inference.generator import Constraint
from midi_rwkv.tokenizer.codec import Codec
from midi_rwkv.tokenizer.mmm import SPECIAL_TOKENS

_BODY_FORBIDDEN = tuple(SPECIAL_TOKENS)  # no special token can occur inside a bar body


@dataclass
class TokenTables:
    """Per model id: does it start a bar, and may it be sampled inside a bar body."""

    starts_bar: Tensor  # [V] bool
    banned: Tensor  # [V] bool
    fill_end: int
    track_end: int

    @classmethod
    def build(cls, codec: Codec) -> "TokenTables":
        vocab = codec.vocab
        names = vocab.tokens
        forbidden = {vocab[t] for t in _BODY_FORBIDDEN} | set(vocab.control_ids)
        starts, banned = [], []
        for piece in codec.pieces:
            starts.append(bool(piece) and piece[0] == vocab.bar)
            bad = (
                not piece
                or any(i in forbidden or names[i].startswith("Program_") for i in piece)
                or (piece[0] in vocab.time_sig_ids)  # a time signature outside a header
                or vocab.bar in piece[1:]  # a bar line inside a token (only in tokenizers with cross-bar merges)
            )
            banned.append(bad and not (piece and piece[0] == vocab.bar))
        return cls(torch.tensor(starts), torch.tensor(banned), vocab["FillBar_End"], vocab["Track_End"])


class BarInfillConstraint(Constraint):
    """Generates exactly ``len(bars)`` bars: the first is already open when generation starts.

    ``end`` closes the section: ``FillBar_End`` for bar infill (the default), ``Track_End`` when a whole
    track is written (track infill: its bars carry no controls, the track's controls are in the prompt).
    """

    def __init__(
        self, tables: TokenTables, bars: list[tuple[tuple[int, ...], tuple[int, ...]]], end: int | None = None
    ):
        self.tables = tables
        self.bars = bars  # (header ids, control ids) of each masked bar
        self.end = tables.fill_end if end is None else end
        self.current = 0  # the bar being written
        self.done = False

    def banned(self) -> Tensor:
        return self.tables.banned

    def after_sample(self, token: int) -> list[int]:
        if not self.tables.starts_bar[token]:
            return [token]
        self.current += 1
        if self.current < len(self.bars):
            header, controls = self.bars[self.current]
            return [*header, *controls]
        self.done = True
        return [self.end]
