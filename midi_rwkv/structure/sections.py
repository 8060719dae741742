"""Sections of a song from its bar-by-bar self-similarity matrix: boundaries, then labels (A B A C ...).

Two standard cues find boundaries, each a curve over bars with one value per candidate boundary:

  * homogeneity (Foote 2000): a checkerboard kernel slid along the diagonal; high where the bars before are alike,
    the bars after are alike, and the two runs differ (a change of texture: the melody enters, the drums stop);
  * repetition (Serra et al. 2012, "structure features"): which earlier and later bars each bar repeats (its row of
    the time-lag matrix, similarity >= :data:`RECURRENCE`); high where that changes (a verse that repeats 40 bars later
    ends where the repeat stops).

Each curve is scaled to its song's highest value and the two are added; boundaries are its peaks, snapped to the
song's phrase grid. A section takes the label of the earlier section it is most like, when alike enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from string import ascii_uppercase

import numpy as np

from midi_rwkv.tokenizer.metre import Bar

PHRASE = 4  # bars in a phrase (in bars of 3 quarters or more; see :func:`phrase_bars`); also the kernels' width
RECURRENCE = 0.85  # two bars whose similarity reaches this count as a repeat in the repetition cue
NOVELTY_MIN = 0.5  # a boundary's novelty (two curves, each scaled to at most 1) must reach this
LABEL_THRESHOLD = 0.8  # two sections get one label when the mean similarity of their aligned bars reaches this


@dataclass(frozen=True)
class Section:
    """Bars [start, end) (0-based real bars) of one section; sections with one label sound alike."""

    start: int
    end: int
    label: str


def phrase_bars(bars: Sequence[Bar]) -> int:
    """Bars in a phrase: :data:`PHRASE` bars, or as many shorter bars as last about 16 quarter notes (8 bars of 2/4,
    16 of 1/4: POP909 writes many songs in 2/4). From the median bar."""
    quarters = float(np.median([4 * bar.numerator / bar.denominator for bar in bars]))
    return PHRASE * max(1, round(4 / quarters)) if quarters < 3 else PHRASE


def _kernel_sides(count: int, width: int):
    """(i, h) for every candidate boundary i with h = min(width, i, count - i) >= half a kernel (at least 2) bars on
    each side: no section at the song's ends is shorter than that (a pickup bar belongs to the first section)."""
    least = max(2, width // 2)
    for i in range(least, count - least + 1):
        yield i, min(width, i, count - i)


def novelty(similarity: np.ndarray, width: int = PHRASE) -> np.ndarray:
    """``[B]`` Foote's novelty of a boundary before each bar (0 where the kernel does not fit).

    The mean similarity within the ``width`` bars before and within the ``width`` bars after (diagonal left out), minus
    the mean similarity across them; near the song's ends the kernel shrinks to the bars there are.
    """
    out = np.zeros(len(similarity))
    for i, h in _kernel_sides(len(similarity), width):
        before, after = similarity[i - h : i, i - h : i], similarity[i : i + h, i : i + h]
        within = (before.sum() + after.sum() - np.trace(before) - np.trace(after)) / (2 * h * (h - 1))
        out[i] = within - similarity[i - h : i, i : i + h].mean()
    return out


def repetition_novelty(similarity: np.ndarray, width: int = PHRASE) -> np.ndarray:
    """``[B]`` how much what the bars repeat changes at a boundary before each bar (0 where the kernel does not fit).

    lag[i, l] = 1 when bar i's similarity to bar i + l (l != 0, inside the song) reaches :data:`RECURRENCE`. The value:
    over the lags some bar near the boundary repeats at, the mean of |share of the ``width`` bars before that repeat
    at l - share of the ``width`` bars after|.
    """
    count = len(similarity)
    lags = np.arange(-(count - 1), count)  # [2B - 1]
    cols = np.arange(count)[:, None] + lags[None, :]  # [B, 2B - 1]: bar i + l
    inside = (cols >= 0) & (cols < count) & (lags[None, :] != 0)
    repeats = inside & (similarity[np.arange(count)[:, None], np.clip(cols, 0, count - 1)] >= RECURRENCE)
    out = np.zeros(count)
    for i, h in _kernel_sides(count, width):
        before, after = repeats[i - h : i].mean(axis=0), repeats[i : i + h].mean(axis=0)
        active = (before > 0) | (after > 0)
        if active.any():
            out[i] = np.abs(before - after)[active].mean()
    return out


def boundaries(similarity: np.ndarray, phrase: int = PHRASE) -> list[int]:
    """Bars where a section starts (0 first): peaks of the two novelty curves (kernel width: one phrase), each curve
    scaled to its highest value, added; a peak must reach :data:`NOVELTY_MIN` and be the highest within half a phrase.
    A peak within a quarter phrase of the song's phrase grid moves onto it (unless that leaves less than half a phrase
    at an end of the song); the grid's offset (songs may open with a pickup) is the one whose lines carry the most
    novelty.
    """
    curve = np.zeros(len(similarity))
    for part in (novelty(similarity, phrase), repetition_novelty(similarity, phrase)):
        if part.max() > 1e-9:
            curve += np.maximum(part, 0) / part.max()
    count = len(curve)
    half, snap = max(1, phrase // 2), max(1, phrase // 4)
    least = max(2, phrase // 2)
    phase = int(np.argmax([curve[p::phrase].sum() for p in range(phrase)]))
    found = {0}
    for i in range(1, count):
        if curve[i] < NOVELTY_MIN or curve[i] < curve[max(0, i - half) : i + half + 1].max():
            continue
        offset = (i - phase) % phrase
        grid = i - offset if offset <= snap else i + phrase - offset if phrase - offset <= snap else i
        found.add(grid if least <= grid <= count - least else i)  # never a short section at the ends
    return sorted(found)


def likeness(similarity: np.ndarray, first: tuple[int, int], second: tuple[int, int], shift: int = 0) -> float:
    """How alike two runs of bars are: the best, over lags up to ``shift`` bars, of the mean similarity of their
    aligned bars (bar a + k with bar c + k + lag), over at least half the shorter run (so that a boundary a bar off
    does not hide a repeat)."""
    (a, b), (c, d) = first, second
    shortest = min(b - a, d - c)
    best = 0.0
    for lag in range(-shift, shift + 1):
        k = np.arange(shortest)
        cols = c + k + lag
        keep = (cols >= c) & (cols < d)
        if keep.any() and 2 * keep.sum() >= shortest:
            best = max(best, float(similarity[a + k[keep], cols[keep]].mean()))
    return best


def _label(index: int) -> str:
    return ascii_uppercase[index] if index < len(ascii_uppercase) else f"S{index + 1}"


def sections(similarity: np.ndarray, phrase: int = PHRASE, threshold: float = LABEL_THRESHOLD) -> list[Section]:
    """Segments between :func:`boundaries`, labelled in order: a segment takes the label of the earlier segment it is
    most like (:func:`likeness`, lags up to a quarter phrase) when that reaches ``threshold``; otherwise a new letter
    (A, B, ..., Z, then S27, S28, ...)."""
    count = len(similarity)
    starts = boundaries(similarity, phrase)
    spans = list(zip(starts, starts[1:] + [count]))
    labels: list[str] = []
    used = 0
    for i, span in enumerate(spans):
        scores = [likeness(similarity, span, other, max(1, phrase // 4)) for other in spans[:i]]
        if scores and max(scores) >= threshold:
            labels.append(labels[int(np.argmax(scores))])
        else:
            labels.append(_label(used))
            used += 1
    return [Section(a, b, label) for (a, b), label in zip(spans, labels)]
