"""What produces an infill in an evaluation: a model setting, or one of two non-model references.

A model system is a checkpoint (optionally with a tuned state or a LoRA), sampling settings, and
whether the bars get their controls (those of the original bars, as in the paper) or none (free).
Every report also has two references on the same prompts:
  * ``original``: the original bars themselves, the ceiling of every similarity metric;
  * ``copy``: the N bars just before the span copied into it (the N after it when the piece
    starts too early), a heuristic that any useful model should beat.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields

from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.ggml import ENGINES
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.tokenizer import Piece

REFERENCES = ("original", "copy")


@dataclass(frozen=True)
class System:
    name: str
    model: str | None = None  # None for the references
    tokenizer: str | None = None
    state: str | None = None
    lora: str | None = None
    free: bool = False
    engine: str = "torch"  # or ggml / ggml-f32 (llama.cpp)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    @property
    def is_reference(self) -> bool:
        return self.model is None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sampler"}
        return out | {"sampler": vars(self.sampler)}


_SAMPLER_KEYS = typing.get_type_hints(SamplerConfig)  # temperature: float, top_k: int, ...


def parse_system(text: str, default_model: str) -> System:
    """``NAME[:key=value,...]``.

    Keys: model tokenizer state lora free engine temperature top_k top_p epsilon repetition_penalty.
    """
    name, _, rest = text.partition(":")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise MidiRwkvError(f"system '{text}': the name must be letters, digits, - or _")
    if name in REFERENCES:
        raise MidiRwkvError(f"system name '{name}' is reserved for a reference row")
    options: dict = {"model": default_model}
    sampler: dict = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise MidiRwkvError(f"system '{text}': '{item}' is not key=value")
        if key in _SAMPLER_KEYS:
            try:
                sampler[key] = _SAMPLER_KEYS[key](value)
            except ValueError:
                raise MidiRwkvError(f"system '{text}': {key} needs a number, got '{value}'") from None
        elif key == "free":
            options["free"] = value.lower() in ("1", "true", "yes")
        elif key in ("model", "tokenizer", "state", "lora"):
            options[key] = value
        elif key == "engine":
            if value not in ENGINES:
                raise MidiRwkvError(f"system '{text}': engine must be one of {', '.join(ENGINES)}")
            options[key] = value
        else:
            raise MidiRwkvError(f"system '{text}': unknown key '{key}'")
    try:
        return System(name, sampler=SamplerConfig(**sampler), **options)
    except (ValueError, MidiRwkvError) as exc:
        raise MidiRwkvError(f"system '{text}': {exc}") from None


def reference_score(name: str, piece: Piece, track: int, bars: tuple[int, int]) -> Score:
    """The ``original`` or ``copy`` infill of real bars [start, end) of ``track``, in original ticks."""
    score = piece.original.copy()
    if name == "original":
        return score
    start, end = bars
    n = end - start
    notes = score.tracks[track].notes
    span_start, span_end = piece.bars[start].start, piece.bars[end - 1].end
    kept = [note.copy() for note in notes if not span_start <= note.time < span_end]
    source = start - n if start - n >= 0 else end
    if source + n > piece.num_bars:
        raise MidiRwkvError(f"{piece.name}: no {n} bars next to bars {start + 1}-{end} to copy")
    copied = []
    for i in range(n):
        src, dst = piece.bars[source + i], piece.bars[start + i]
        length = dst.end - dst.start
        for note in notes:
            if src.start <= note.time < src.end and note.time - src.start < length:
                moved = note.copy()
                moved.time = note.time - src.start + dst.start
                moved.duration = min(note.duration, span_end - moved.time)
                copied.append(moved)
    notes.clear()
    notes.extend(sorted(kept + copied, key=lambda x: (x.time, x.pitch)))
    return score
