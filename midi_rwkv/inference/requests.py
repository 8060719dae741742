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

from dataclasses import dataclass, field

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.tokenizer.requested import ControlRequest

__all__ = ["BarFill", "ControlRequest", "Fill", "InfillRequest", "NewTrack", "TrackFill"]


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
