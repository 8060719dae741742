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

import numpy as np
from symusic import Track

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer.metre import Bar

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


def _polyphony(onsets: np.ndarray) -> tuple[int, int]:
    _, counts = np.unique(onsets, return_counts=True)
    clamp = lambda v: int(min(max(v, POLYPHONY_MIN), POLYPHONY_MAX))  # noqa: E731
    return clamp(counts.min()), clamp(counts.max())


def _duration_flags(durations: np.ndarray, tpq: int) -> tuple[bool, ...]:
    return tuple(bool(np.any(durations == round(beats * tpq))) for _, beats in DURATIONS)


def bar_controls(track: Track, bars: list[Bar], tpq: int) -> list[BarControls]:
    """Controls of each bar in ``bars`` for ``track`` (ticks of the quantised score, ``tpq``)."""
    times, durations, _ = _notes(track)
    out = []
    for bar in bars:
        mask = (times >= bar.start) & (times < bar.end)
        count = int(mask.sum())
        if track.is_drum:
            out.append(BarControls(min(count, DENSITY_MAX)))
        elif count == 0:
            out.append(BarControls(0, None, (False,) * len(DURATIONS)))
        else:
            out.append(
                BarControls(min(count, DENSITY_MAX), _polyphony(times[mask]), _duration_flags(durations[mask], tpq))
            )
    return out


def _repetition(times: np.ndarray, pitches: np.ndarray, bars: list[Bar]) -> float:
    """Mean share of a bar's (onset, pitch) pairs found again in each of the next bars of equal length."""
    sets = []
    for bar in bars:
        mask = (times >= bar.start) & (times < bar.end)
        sets.append({(int(t) - bar.start, int(p)) for t, p in zip(times[mask], pitches[mask])})
    scores = []
    for i, (bar, notes) in enumerate(zip(bars, sets)):
        if not notes:
            continue
        for j in range(i + 1, min(i + 1 + REPETITION_LOOKAHEAD, len(bars))):
            if bars[j].end - bars[j].start == bar.end - bar.start:
                scores.append(len(notes & sets[j]) / len(notes))
    value = float(np.mean(scores)) if scores else 0.0
    return float(REPETITION_BINS[np.abs(REPETITION_BINS - value).argmin()])


def track_controls(track: Track, bars: list[Bar], tpq: int) -> TrackControls:
    """Track-level controls over ``bars`` (the bars the sequence covers)."""
    times, durations, pitches = _notes(track)
    per_bar = [int(((times >= b.start) & (times < b.end)).sum()) for b in bars]
    density = (min(min(per_bar), DENSITY_MAX), min(max(per_bar), DENSITY_MAX))
    inside = (times >= bars[0].start) & (times < bars[-1].end)
    repetition = _repetition(times, pitches, bars)
    if track.is_drum or not inside.any():
        return TrackControls(density, repetition)
    return TrackControls(density, repetition, _polyphony(times[inside]), _duration_flags(durations[inside], tpq))


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
