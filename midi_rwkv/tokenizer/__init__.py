"""MIDI <-> token ids: the paper's MMM/REMI tokenizer, bar controls, BPE and infill sequences.

``InfillTokenizer``, ``Piece`` and ``load_score`` need MidiTok and symusic and are imported on first use, so the
sequence builders and controls (what training from a compiled corpus needs) import without them.
"""

from midi_rwkv.tokenizer.controls import BarControls, TrackControls
from midi_rwkv.tokenizer.sequences import InfillSequence

__all__ = ["BarControls", "InfillSequence", "InfillTokenizer", "Piece", "TrackControls", "load_score"]

_LAZY = {"InfillTokenizer": "infill_tokenizer", "Piece": "score", "load_score": "score"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"midi_rwkv.tokenizer.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'midi_rwkv.tokenizer' has no attribute {name!r}")
