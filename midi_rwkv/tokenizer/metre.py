"""Bars from real time signatures, and how each real bar is written with the tokenizer's metres.

The paper's vocabulary has nine time signatures (3/8, 12/8, 6/8, 5/4, 6/4, 3/4, 2/4, 1/4, 4/4).
Real music also has 2/2, 3/2, 4/2, 9/8, 7/4, ... The original release lets MidiTok drop such
signatures, which silently moves every later bar line. We instead keep the real bar lines and
write each real bar as one or more *tokenizer bars* whose lengths add up to it exactly:
2/2 -> 4/4, 3/2 -> 6/4, 4/2 -> 4/4 + 4/4, 9/8 -> 6/8 + 3/8. Users always see real bars; the
sequence builder works on tokenizer bars and maps between the two.

Conventions (documented in docs/design.md):
  * no time signature at tick 0 means 4/4 until the first one (the MIDI default);
  * a time-signature event inside a bar takes effect at the next bar line.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING

from midi_rwkv.errors import UnsupportedMetreError

if TYPE_CHECKING:  # symusic is not needed to read bars (training from a compiled corpus runs without it)
    from symusic import Score

# The smallest note value we measure bar lengths in: a 1/32 note.
_UNITS_PER_WHOLE = 32


@dataclass(frozen=True)
class Bar:
    """One bar: [start, end) in ticks of the score it was computed on, and its time signature."""

    start: int
    end: int
    numerator: int
    denominator: int

    @property
    def time_signature(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def _units(numerator: int, denominator: int) -> int:
    """Bar length in 1/32 notes; raises for denominators we cannot measure."""
    if denominator <= 0 or denominator > _UNITS_PER_WHOLE or _UNITS_PER_WHOLE % denominator:
        raise UnsupportedMetreError(f"time signature {numerator}/{denominator} has an unsupported denominator")
    return numerator * (_UNITS_PER_WHOLE // denominator)


@lru_cache(maxsize=256)
def decompose(numerator: int, denominator: int, supported: frozenset[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Write a bar of ``numerator/denominator`` as the fewest supported time signatures.

    Among the shortest writings we take the most even one (4/2 -> 4/4 + 4/4, 7/4 -> 4/4 + 3/4),
    then the one using the bar's own kind of beat (9/8 -> 6/8 + 3/8, not 3/4 + 3/8). Parts are
    ordered longest first.

    Raises:
        UnsupportedMetreError: when no combination adds up to the bar (e.g. 1/8, 3/16).
    """
    if (numerator, denominator) in supported:
        return ((numerator, denominator),)
    if numerator <= 0:
        raise UnsupportedMetreError(f"time signature {numerator}/{denominator} is not a valid metre")
    target = _units(numerator, denominator)
    natural = 8 if denominator >= 8 else 4
    coins = sorted(supported, key=lambda ts: -_units(*ts))
    for count in range(1, target + 1):
        if count * _units(*coins[0]) < target:
            continue  # even the longest parts are too short
        writings = [w for w in combinations_with_replacement(coins, count) if sum(_units(*c) for c in w) == target]
        if writings:
            return min(writings, key=lambda w: (max(_units(*c) for c in w), sum(c[1] != natural for c in w)))
        if count >= 8:
            break
    raise UnsupportedMetreError(
        f"time signature {numerator}/{denominator} cannot be written with the tokenizer's "
        f"time signatures ({', '.join(f'{n}/{d}' for n, d in sorted(supported))})"
    )


def _signature_changes(score: Score) -> list[tuple[int, int, int]]:
    """Sorted (tick, numerator, denominator), with 4/4 at tick 0 when the file gives none there."""
    changes = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))
    return changes


def real_bars(score: Score, end_tick: int) -> list[Bar]:
    """The bars of ``score`` that start at or before ``end_tick`` (at least one bar).

    Bar lines accumulate exactly (as fractions of a tick) so that odd resolutions do not drift.
    """
    tpq = score.ticks_per_quarter
    changes = _signature_changes(score)
    for _, num, den in changes:
        _units(num, den)  # validate every denominator up front
    bars: list[Bar] = []
    position = Fraction(0)
    index = 0  # the time signature in force
    while True:
        # A change takes effect at the first bar line at or after its tick.
        while index + 1 < len(changes) and changes[index + 1][0] <= position:
            index += 1
        _, num, den = changes[index]
        length = Fraction(num * 4 * tpq, den)
        if length <= 0:
            raise UnsupportedMetreError(f"time signature {num}/{den} has no length")
        start, end = round(position), round(position + length)
        bars.append(Bar(start, end, num, den))
        position += length
        if position > end_tick:
            return bars


def split_bars(bars: list[Bar], supported: frozenset[tuple[int, int]]) -> tuple[list[Bar], list[int]]:
    """Split real bars into tokenizer bars.

    Returns:
        The tokenizer bars, and for each real bar the index of its first tokenizer bar, followed
        by the total count (so real bar ``i`` covers tokenizer bars ``[first[i], first[i + 1])``).
    """
    token_bars: list[Bar] = []
    first: list[int] = []
    for bar in bars:
        first.append(len(token_bars))
        position = Fraction(bar.start)
        scale = Fraction(bar.end - bar.start, _units(bar.numerator, bar.denominator))
        for num, den in decompose(bar.numerator, bar.denominator, supported):
            length = scale * _units(num, den)
            token_bars.append(Bar(round(position), round(position + length), num, den))
            position += length
    first.append(len(token_bars))
    return token_bars, first
