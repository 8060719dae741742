"""Live fixtures: an infiller on the tiny model and the base tokenizer, and a melody to play."""

from __future__ import annotations

import pytest
import torch

from midi_rwkv.inference.constraints import TokenTables
from midi_rwkv.inference.generator import Generator, TorchEngine
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.live import LiveNote


class NotesFirst:
    """The tiny model as an engine that writes well-formed notes: after each token its logits lean (+8) towards the
    kind of token that continues a REMI note (Position, Pitch, Velocity, Duration, Position...), and away from ending
    the bar, so bars hold notes until the note limit ends them. Which position, pitch and length stay the model's.
    (A random model may end every bar at once, and an empty bar proves little about where notes land.)"""

    name = "test"
    CYCLE = ("Position", "Pitch", "Velocity", "Duration")

    def __init__(self, model, tables: TokenTables, tok):
        self.inner, self.config = TorchEngine(model), model.config
        kinds = [tok.codec.vocab.tokens[piece[-1]].split("_")[0] if piece else "" for piece in tok.codec.pieces]
        self.kind = kinds
        self.bias = {
            kind: torch.tensor([8.0 if k == nxt or (nxt, k) == ("Pitch", "PitchDrum") else 0.0 for k in kinds])
            - tables.starts_bar.float() * 4.0
            for kind, nxt in zip(("Duration", *self.CYCLE[:-1]), self.CYCLE)
        }
        self.bias["PitchDrum"] = self.bias["Pitch"]

    def lean(self, logits, last: int):
        kind = self.kind[last]
        return logits + self.bias.get(kind, self.bias["Duration"])

    def prefill(self, tokens, state):
        logits, state = self.inner.prefill(tokens, state)
        return self.lean(logits, tokens[-1]), state

    def fork(self, state, k):
        streams, lean = self.inner.fork(state, k), self.lean

        class Streams:
            def step(self, tokens):
                logits = streams.step(tokens)
                return torch.stack([lean(row, t if t is not None else 0) for row, t in zip(logits, tokens)])

        return Streams()


@pytest.fixture
def infiller(tiny_model, tok) -> Infiller:
    tables = TokenTables.build(tok.codec)
    return Infiller(Generator(NotesFirst(tiny_model, tables, tok)), tok, layout="target-last")


def melody(bars: int, quarters: int = 4) -> list[list[LiveNote]]:
    """Eighth notes rising through a C major scale, ``bars`` bars of ``quarters`` quarter notes."""
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    return [[LiveNote(scale[(b + k) % 8], k / 2, 0.5, 90) for k in range(2 * quarters)] for b in range(bars)]
