"""Inference: the token-id generator, its engines (PyTorch and GGML), the sampler, bar-by-bar control,
and infilling MIDI files (the Python API: ``Infiller`` and the fills it takes)."""

from midi_rwkv.inference.infiller import Candidate, Infiller
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.requests import BarFill, ControlRequest, InfillRequest, NewTrack, TrackFill

__all__ = ["BarFill", "Candidate", "ControlRequest", "InfillOptions", "InfillRequest", "Infiller", "NewTrack",
           "TrackFill"]
