"""What a composer asks for: bars of a track, a whole track again, or a new track, each with optional controls.

    BarFill(track=0, bars=(4, 8))                          # real bars 5-8 (counted from 0 here, [start, end))
    TrackFill(track=2, controls=ControlRequest(density=[4, 10]))   # all of track 2, 4-10 notes per bar
    NewTrack(program=33)                                   # a bass part under the others
    NewTrack(is_drum=True)                                 # a drum part

Several requests run one after another, each seeing the results of the ones before (``Infiller.fill``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer import BarControls, Piece
from midi_rwkv.tokenizer.controls import DENSITY_MAX, TrackControls, check_drum_controls


@dataclass
class ControlRequest:
    """What the user asked for; ``None`` fields keep the original's values (a new track: the other tracks').

    ``density``: bar fills take one value per real bar, or one for all; track fills take one value or a
    (low, high) range of notes per bar.
    """

    density: list[int] | None = None
    polyphony: tuple[int, int] | None = None
    durations: tuple[bool, ...] | None = None


@dataclass
class BarFill:
    """Real bars ``[start, end)`` of ``track`` (both counted from 0)."""

    track: int
    bars: tuple[int, int]
    controls: ControlRequest | None = None
    free: bool = False  # no bar controls at all: the model chooses

    def describe(self) -> str:
        return f"track {self.track}, bars {self.bars[0] + 1}-{self.bars[1]}"


@dataclass
class TrackFill:
    """All of ``track``, written again from its first bar to its last (its program and channel are kept)."""

    track: int
    controls: ControlRequest | None = None

    def describe(self) -> str:
        return f"track {self.track}, whole"


@dataclass
class NewTrack:
    """A new part under the existing ones: General MIDI ``program`` (0-127), or drums."""

    program: int = 0
    is_drum: bool = False
    controls: ControlRequest | None = None
    name: str = ""

    def __post_init__(self):
        if not 0 <= self.program <= 127:
            raise ControlError(f"program {self.program} is not a General MIDI program (0-127)")

    def describe(self) -> str:
        return "new drum track" if self.is_drum else f"new track, program {self.program}"


Fill = BarFill | TrackFill | NewTrack


def apply_bar_request(piece: Piece, track: int, base: list[BarControls], bars: tuple[int, int],
                      request: ControlRequest, is_drum: bool) -> list[BarControls]:
    """Per tokenizer bar controls: the original bars', overridden by the request."""
    check_drum_controls(track, is_drum, request.polyphony, request.durations)
    n_real = bars[1] - bars[0]
    density = request.density
    if density is not None and len(density) not in (1, n_real):
        raise ControlError(f"--density has {len(density)} values for {n_real} bars (give one, or one per bar)")
    out, first = [], piece.first_token_bar
    for real in range(*bars):
        parts = range(first[real] - first[bars[0]], first[real + 1] - first[bars[0]])
        for part in parts:
            c = base[part]
            if density is not None:  # a real bar written as several tokenizer bars shares its density
                value = density[0] if len(density) == 1 else density[real - bars[0]]
                c = replace(c, density=round(value / len(parts)))
            if request.polyphony and not is_drum:
                c = replace(c, polyphony=request.polyphony)
            if request.durations and not is_drum:
                c = replace(c, durations=request.durations)
            out.append(c)
    return out


def apply_track_request(base: TrackControls, request: ControlRequest, track: int, is_drum: bool) -> TrackControls:
    """Track controls: ``base`` (the track's own, or a new track's default), overridden by the request."""
    check_drum_controls(track, is_drum, request.polyphony, request.durations)
    out = base
    if request.density is not None:
        if len(request.density) not in (1, 2):
            raise ControlError("a whole track takes --density N or LOW,HIGH (notes per bar)")
        low, high = min(request.density), max(request.density)
        out = replace(out, density=(min(low, DENSITY_MAX), min(high, DENSITY_MAX)))
    if request.polyphony and not is_drum:
        out = replace(out, polyphony=request.polyphony)
    if request.durations and not is_drum:
        out = replace(out, durations=request.durations)
    return out
