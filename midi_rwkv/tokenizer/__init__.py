"""MIDI <-> token ids: the paper's MMM/REMI tokenizer, bar controls, BPE and infill sequences."""

from midi_rwkv.tokenizer.controls import BarControls, TrackControls
from midi_rwkv.tokenizer.sequences import InfillSequence
from midi_rwkv.tokenizer.infill_tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.score import Piece, load_score

__all__ = ["BarControls", "InfillSequence", "InfillTokenizer", "Piece", "TrackControls", "load_score"]
