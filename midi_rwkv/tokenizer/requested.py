"""The controls a composer asks for, and what they make of a piece's own: per tokenizer bar for bars of a track,
one set for a whole or new track. Requests name real bars (the song's, counted from 0); this is where they become
the tokenizer's bars (a long bar may be written as several), so nothing above the tokenizer sees that numbering.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer.controls import (
    DENSITY_MAX,
    DURATIONS,
    POLYPHONY_MAX,
    POLYPHONY_MIN,
    BarControls,
    TrackControls,
    check_drum_controls,
)

if TYPE_CHECKING:
    from midi_rwkv.tokenizer.score import Piece


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


def apply_bar_request(piece: Piece, track: int, base: list[BarControls], bars: tuple[int, int],
                      request: ControlRequest, is_drum: bool) -> list[BarControls]:
    """Per tokenizer bar controls of real bars ``bars``: ``base`` (the original bars'), overridden by the request."""
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
