"""What a composer asks for: bars of a track, a whole track again, or a new track, each with optional controls.

    BarFill(track=0, bars=(4, 8))                          # real bars 5-8 (counted from 0 here, [start, end))
    TrackFill(track=2, controls=ControlRequest(density=[4, 10]))   # all of track 2, 4-10 notes per bar
    NewTrack(program=33)                                   # a bass part under the others
    NewTrack(is_drum=True)                                 # a drum part

Several fills run one after another, each seeing the results of the ones before (``Infiller.fill``). An
:class:`InfillRequest` is the whole of one request: its fills, how they are written (:class:`InfillOptions`) and
their sampling; the command line, the studio and the evaluation all build one (``Infiller.write`` runs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.tokenizer import BarControls, Piece
from midi_rwkv.tokenizer.controls import (
    DENSITY_MAX,
    DURATIONS,
    POLYPHONY_MAX,
    POLYPHONY_MIN,
    TrackControls,
    check_drum_controls,
)


@dataclass
class ControlRequest:
    """What the user asked for; ``None`` fields keep the original's values (a new track: the other tracks').

    ``density``: bar fills take one value per real bar, or one for all; track fills take one value or a
    (low, high) range of notes per bar.
    """

    density: list[int] | None = None
    polyphony: tuple[int, int] | None = None
    durations: tuple[bool, ...] | None = None

    def __post_init__(self):
        """The checks every front end shares (how many density values a fill takes is the fill's to check)."""
        if self.density is not None and not (
            self.density and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in self.density)
        ):
            raise ControlError("'density' takes whole numbers of notes per bar, 0 or more")
        if self.polyphony is not None:
            low, high = self.polyphony
            if not POLYPHONY_MIN <= low <= high <= POLYPHONY_MAX:
                raise ControlError(f"'polyphony' {low}-{high}: need {POLYPHONY_MIN} <= MIN <= MAX <= {POLYPHONY_MAX}")
        if self.durations is not None and len(self.durations) != len(DURATIONS):
            raise ControlError(f"'durations' takes {len(DURATIONS)} flags (whole, half, quarter, eighth, sixteenth)")


@dataclass
class BarFill:
    """Real bars ``[start, end)`` of ``track`` (both counted from 0)."""

    track: int
    bars: tuple[int, int]
    controls: ControlRequest | None = None

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


@dataclass(frozen=True)
class InfillRequest:
    """One request: the fills (run in order), how they are written, and their sampling (None: each fill kind's
    default, :func:`~midi_rwkv.inference.sampler.default_sampler`)."""

    fills: tuple[Fill, ...]
    options: InfillOptions = field(default_factory=InfillOptions)
    sampler: SamplerConfig | None = None

    def __post_init__(self):
        object.__setattr__(self, "fills", tuple(self.fills))
        if not self.fills:
            raise MidiRwkvError("nothing to fill")
        if self.options.free:
            if not all(isinstance(f, BarFill) for f in self.fills):
                raise MidiRwkvError("free infilling is for bars of a track (whole and new tracks get track controls)")
            if any(f.controls not in (None, ControlRequest()) for f in self.fills):
                raise ControlError("free infilling takes no density, polyphony or duration controls")
        bar_fills = [f for f in self.fills if isinstance(f, BarFill) and f.controls and f.controls.density]
        if len(self.fills) > 1 and any(len(f.controls.density) > 1 for f in bar_fills):
            raise ControlError("with several fills, density takes one value for every bar")

    def describe(self) -> str:
        return "; ".join(f.describe() for f in self.fills)


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
