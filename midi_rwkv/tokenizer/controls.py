"""Attribute controls: what a bar (or a whole track) should look like, as tokens.

Bar controls, per tokenizer bar, computed on the quantised score (the tokenizer's view) and on
that bar alone — the original release inherits a MidiTok bug where the first requested bar
counts every note from the start of the track (docs/original-release.md#bar-controls); we do not.

  * note density: notes whose onset lies in the bar, 0..17, or 18 meaning "18 or more";
  * onset polyphony (min, max): over the bar's distinct onset ticks, how many notes start
    together, clamped to 1..6;
  * note durations: five flags, whole/half/quarter/eighth/sixteenth, 1 when some note of the bar
    lasts exactly that long (exact on the quantised grid).

Empty and one-note bars (which get no controls at all in the original):
  * a one-note bar gets density 1, polyphony 1/1 and that note's duration flag;
  * an empty bar gets density 0 and five 0 duration flags, and no polyphony tokens, since it
    has no onset to count.
Drum tracks get note density only, as in the paper.

Token order in a bar: PolyphonyMin, PolyphonyMax, Density, five duration flags
(docs/original-release.md#control-tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer.metre import Bar

if TYPE_CHECKING:  # symusic is not needed to build sequences from a compiled corpus
    from symusic import Track

DURATIONS = (("Whole", 4.0), ("Half", 2.0), ("Quarter", 1.0), ("Eight", 0.5), ("Sixteenth", 0.25))  # token names, beats
DURATION_NAMES = ("whole", "half", "quarter", "eighth", "sixteenth")  # the same flags, as people write them
DENSITY_MAX = 18  # "18+"
POLYPHONY_MIN, POLYPHONY_MAX = 1, 6
REPETITION_BINS = np.linspace(0.0, 1.0, 10)
REPETITION_LOOKAHEAD = 3  # compare each bar with the next 3 bars of the same length


def _density_token(value: int) -> str:
    return "18+" if value >= DENSITY_MAX else str(value)


def _check_polyphony(polyphony: tuple[int, int] | None) -> None:
    if polyphony is None:
        return
    low, high = polyphony
    if not POLYPHONY_MIN <= low <= high <= POLYPHONY_MAX:
        raise ControlError(f"polyphony {low}-{high} must satisfy {POLYPHONY_MIN} <= min <= max <= {POLYPHONY_MAX}")


def _check_durations(durations: tuple[bool, ...] | None) -> None:
    if durations is not None and len(durations) != len(DURATIONS):
        raise ControlError(f"duration flags need {len(DURATIONS)} values, got {len(durations)}")


def check_drum_controls(track: int, is_drum: bool, polyphony, durations) -> None:
    """Drum tracks take note density (and, for a whole track, repetition) only: no polyphony or duration controls."""
    if is_drum and (polyphony is not None or durations is not None):
        raise ControlError(
            f"track {track} is a drum track: only note density applies (no polyphony or duration controls)"
        )


@dataclass(frozen=True)
class BarControls:
    """Controls of one bar. ``None`` fields emit no tokens (drums, or polyphony of an empty bar)."""

    density: int
    polyphony: tuple[int, int] | None = None
    durations: tuple[bool, ...] | None = None

    def __post_init__(self):
        if self.density < 0:
            raise ControlError(f"note density must be 0 or more, got {self.density}")
        _check_polyphony(self.polyphony)
        _check_durations(self.durations)

    def tokens(self) -> list[str]:
        out = []
        if self.polyphony is not None:
            out += [f"ACBarOnsetPolyphonyMin_{self.polyphony[0]}", f"ACBarOnsetPolyphonyMax_{self.polyphony[1]}"]
        out.append(f"ACBarNoteDensity_{_density_token(self.density)}")
        if self.durations is not None:
            out += [f"ACBarNoteDuration{name}_{int(flag)}" for (name, _), flag in zip(DURATIONS, self.durations)]
        return out


@dataclass(frozen=True)
class TrackControls:
    """Controls of a whole track, for track infilling."""

    density: tuple[int, int]  # min and max notes per bar
    repetition: float  # one of REPETITION_BINS
    polyphony: tuple[int, int] | None = None
    durations: tuple[bool, ...] | None = None

    def __post_init__(self):
        if not 0 <= self.density[0] <= self.density[1]:
            raise ControlError(f"track density {self.density} must satisfy 0 <= min <= max")
        _check_polyphony(self.polyphony)
        _check_durations(self.durations)

    def tokens(self) -> list[str]:
        out = []
        if self.polyphony is not None:
            out += [f"ACTrackOnsetPolyphonyMin_{self.polyphony[0]}", f"ACTrackOnsetPolyphonyMax_{self.polyphony[1]}"]
        out += [
            f"ACTrackNoteDensityMin_{_density_token(self.density[0])}",
            f"ACTrackNoteDensityMax_{_density_token(self.density[1])}",
        ]
        if self.durations is not None:
            out += [f"ACTrackNoteDuration{name}_{int(flag)}" for (name, _), flag in zip(DURATIONS, self.durations)]
        out.append(f"ACTrackRepetition_{self.repetition:.2f}")
        return out


def _notes(track: Track) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = track.notes.numpy()
    return arrays["time"], arrays["duration"], arrays["pitch"]


def _clamp_polyphony(value: int) -> int:
    return int(min(max(value, POLYPHONY_MIN), POLYPHONY_MAX))


@dataclass
class BarStatistics:
    """What the controls of any run of bars are made of, one row per bar of one track.

    Bar controls read one row; track controls combine the rows of a window (polyphony and durations
    combine exactly over bars, since every onset lies in one bar). A compiled corpus stores these rows,
    so it makes the same controls without the notes.
    """

    count: np.ndarray  # notes starting in the bar (not capped)
    poly_min: np.ndarray  # fewest / most notes starting together, clamped to 1..6; 0 in an empty bar
    poly_max: np.ndarray
    durations: np.ndarray  # [bars, 5] bool: some note lasts exactly a whole, half, ... sixteenth
    pairs: np.ndarray  # distinct (onset in the bar, pitch) pairs
    repeats: np.ndarray  # [bars, 3] of those, found again in bar i + 1 + d; -1: not comparable (other length, none)

    def __len__(self) -> int:
        return len(self.count)

    @property
    def repetition(self) -> np.ndarray:
        """[bars, 3] share of bar i's pairs found again in bar i + 1 + d (the exact quotient); NaN: not comparable."""
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = np.asarray(self.repeats, np.float64) / np.asarray(self.pairs, np.float64)[:, None]
        return np.where(np.asarray(self.repeats) < 0, np.nan, shares)


def bar_statistics(track: Track, bars: list[Bar], tpq: int) -> BarStatistics:
    """The :class:`BarStatistics` of ``track`` over ``bars`` (ticks of the quantised score, ``tpq``)."""
    times, durations, pitches = _notes(track)
    n = len(bars)
    stats = BarStatistics(
        np.zeros(n, np.int32), np.zeros(n, np.int8), np.zeros(n, np.int8), np.zeros((n, len(DURATIONS)), bool),
        np.zeros(n, np.int32), np.full((n, REPETITION_LOOKAHEAD), -1, np.int32),
    )
    sets = []
    for i, bar in enumerate(bars):
        mask = (times >= bar.start) & (times < bar.end)
        stats.count[i] = int(mask.sum())
        if stats.count[i]:
            _, together = np.unique(times[mask], return_counts=True)
            stats.poly_min[i], stats.poly_max[i] = _clamp_polyphony(together.min()), _clamp_polyphony(together.max())
            stats.durations[i] = [np.any(durations[mask] == round(beats * tpq)) for _, beats in DURATIONS]
        sets.append({(int(t) - bar.start, int(p)) for t, p in zip(times[mask], pitches[mask])})
        stats.pairs[i] = len(sets[-1])
    for i, (bar, notes) in enumerate(zip(bars, sets)):
        for d in range(REPETITION_LOOKAHEAD):
            j = i + 1 + d
            if notes and j < n and bars[j].end - bars[j].start == bar.end - bar.start:
                stats.repeats[i, d] = len(notes & sets[j])
    return stats


def controls_of_bars(stats: BarStatistics, is_drum: bool, start: int = 0, end: int | None = None) -> list[BarControls]:
    """The controls of bars ``start .. end - 1``, each on its own."""
    out = []
    for i in range(start, len(stats) if end is None else end):
        count = int(stats.count[i])
        if is_drum:
            out.append(BarControls(min(count, DENSITY_MAX)))
        elif count == 0:
            out.append(BarControls(0, None, (False,) * len(DURATIONS)))
        else:
            polyphony = (int(stats.poly_min[i]), int(stats.poly_max[i]))
            out.append(BarControls(min(count, DENSITY_MAX), polyphony, tuple(bool(f) for f in stats.durations[i])))
    return out


def controls_of_track(stats: BarStatistics, is_drum: bool, start: int = 0, end: int | None = None) -> TrackControls:
    """The controls of the whole window of bars ``start .. end - 1``.

    Repetition: the mean share of a bar's (onset, pitch) pairs found again in each of the next
    ``REPETITION_LOOKAHEAD`` bars of equal length inside the window, to the nearest bin.
    """
    end = len(stats) if end is None else end
    count = stats.count[start:end]
    density = (min(int(count.min()), DENSITY_MAX), min(int(count.max()), DENSITY_MAX))
    window = np.asarray(stats.repetition[start:end])
    inside = np.arange(start, end)[:, None] + 1 + np.arange(REPETITION_LOOKAHEAD)[None, :] < end
    scores = window[inside & ~np.isnan(window)]  # bar by bar, then lookahead: the order the pairs are met in
    value = float(np.mean(scores)) if len(scores) else 0.0
    repetition = float(REPETITION_BINS[np.abs(REPETITION_BINS - value).argmin()])
    played = count > 0
    if is_drum or not played.any():
        return TrackControls(density, repetition)
    polyphony = (int(stats.poly_min[start:end][played].min()), int(stats.poly_max[start:end].max()))
    durations = tuple(bool(f) for f in stats.durations[start:end].any(axis=0))
    return TrackControls(density, repetition, polyphony, durations)


def bar_controls(track: Track, bars: list[Bar], tpq: int) -> list[BarControls]:
    """Controls of each bar in ``bars`` for ``track`` (ticks of the quantised score, ``tpq``)."""
    return controls_of_bars(bar_statistics(track, bars, tpq), track.is_drum)


def track_controls(track: Track, bars: list[Bar], tpq: int) -> TrackControls:
    """Track-level controls over ``bars`` (the bars the sequence covers)."""
    return controls_of_track(bar_statistics(track, bars, tpq), track.is_drum)


def _control_pair_error(want, got) -> float:
    """|density errors| + |polyphony errors| (1 where only one side has polyphony) + wrong duration flags,
    + for track controls, repetition bins apart."""
    a = want.density if isinstance(want.density, tuple) else (want.density,)
    b = got.density if isinstance(got.density, tuple) else (got.density,)
    total = float(sum(abs(x - y) for x, y in zip(a, b)))
    if want.polyphony and got.polyphony:
        total += abs(want.polyphony[0] - got.polyphony[0]) + abs(want.polyphony[1] - got.polyphony[1])
    elif want.polyphony or got.polyphony:
        total += 1
    if want.durations and got.durations:
        total += sum(x != y for x, y in zip(want.durations, got.durations))
    if isinstance(want, TrackControls) and isinstance(got, TrackControls):
        total += round(abs(want.repetition - got.repetition) * (len(REPETITION_BINS) - 1))
    return total


def control_error(requested: list, realised: list) -> float:
    """Summed over bars (or over the one TrackControls of a whole track): |density error| + |polyphony min and
    max errors| + wrong duration flags (+ repetition bins apart for a track). 0 = every control honoured.

    Polyphony asked for where the bar has none (or the reverse) counts 1.
    """
    return sum(_control_pair_error(want, got) for want, got in zip(requested, realised))


def typical_track_controls(others: list[TrackControls], is_drum: bool) -> TrackControls:
    """Controls for a new track when none are given: the element-wise median of the other tracks'
    (drums: density and repetition only; the duration flags present in at least half of them)."""
    if not others:  # nothing to go by: a plain part
        if is_drum:
            return TrackControls((4, 12), 0.0)
        return TrackControls((2, 8), 0.0, (1, 1), (False, False, True, True, False))

    def median(values) -> int:
        return int(round(float(np.median(values))))

    density = (median([c.density[0] for c in others]), median([c.density[1] for c in others]))
    density = (min(density), max(density))
    repetition = float(REPETITION_BINS[np.abs(REPETITION_BINS - np.median([c.repetition for c in others])).argmin()])
    if is_drum:
        return TrackControls(density, repetition)
    polys = [c.polyphony for c in others if c.polyphony] or [(1, 1)]
    low, high = median([p[0] for p in polys]), median([p[1] for p in polys])
    flags = [c.durations for c in others if c.durations] or [(False, False, True, True, False)]
    durations = tuple(bool(np.mean([f[i] for f in flags]) >= 0.5) for i in range(len(DURATIONS)))
    return TrackControls(density, repetition, (min(low, high), max(low, high)), durations)


def describe_controls(c: BarControls | TrackControls) -> str:
    """One bar's (or a track's) controls as people read them, e.g. ``[density 5 poly 1-2 dur ..QE.]``."""
    if isinstance(c, TrackControls):
        density, extra = f"{c.density[0]}-{c.density[1]}", f" rep {c.repetition:.2f}"
    else:
        density, extra = str(c.density), ""
    poly = f" poly {c.polyphony[0]}-{c.polyphony[1]}" if c.polyphony else ""
    durs = ""
    if c.durations is not None:
        durs = " dur " + "".join(n[0] if f else "." for (n, _), f in zip(DURATIONS, c.durations))
    return f"[density {density}{poly}{durs}{extra}]"
