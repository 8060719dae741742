"""Musical similarity between an infilled span and the original bars (docs/original-release.md#metrics,
with its bugs fixed).

Every function takes ``(generated, original, region)`` (or one score) and returns a float, NaN when
the metric is undefined for that pair (say so in reports rather than inventing a value).

Silence. The original release scores a silent frame 0 in content preservation even when both
scores are silent there, and calls an empty span perfectly groove-consistent (docs/original-release.md#metric-silence).
Here silence is music: a frame silent in both scores matches (1), silent in one only does not (0);
groove consistency of an empty span is undefined (NaN). ``faithful=True`` reproduces the original
definitions where they differ, for comparison with published numbers.
"""

from __future__ import annotations

import numpy as np
from symusic import Score

from midi_rwkv.metrics.region import Region, span_notes, track_notes
from midi_rwkv.structure.features import FRAMES_PER_BAR, Notes, chroma, frames, grid_step, onset_grid, smooth


def content_preservation(generated: Score, original: Score, region: Region, faithful: bool = False) -> float:
    """Mean over frames of cos(c_gen, c_orig), c = smoothed, L2-normalised 12-bin chroma.

    16 frames per bar; a frame's chroma counts the pitch classes of every note sounding in it (held
    notes included); smoothing averages frames [i-4, i+4). A frame where both are silent scores 1
    (0 when ``faithful``); silent in one only, 0.
    """
    cells = frames(region.bars, FRAMES_PER_BAR)
    gen = smooth(chroma(track_notes(generated, region.track), cells))
    orig = smooth(chroma(track_notes(original, region.track), cells))
    norms = np.linalg.norm(gen, axis=1) * np.linalg.norm(orig, axis=1)
    cos = np.where(norms > 1e-6, (gen * orig).sum(axis=1) / np.maximum(norms, 1e-12), 0.0)
    if not faithful:
        both_silent = (np.abs(gen).sum(axis=1) < 1e-6) & (np.abs(orig).sum(axis=1) < 1e-6)
        cos = np.where(both_silent, 1.0, cos)
    return float(cos.mean())


def groove_similarity(generated: Score, original: Score, region: Region) -> float:
    """Mean over bars of 1 - |g_gen XOR g_orig| / Q (Wu & Yang's grooving similarity, bar by bar).

    g is a bar's onset grid at 1/32-note resolution (Q cells): which cells have a note starting.
    Two empty bars are identical (1).
    """
    step = grid_step(region.tpq)
    gen, orig = track_notes(generated, region.track), track_notes(original, region.track)
    scores = []
    for bar in region.bars:
        a, b = onset_grid(gen, bar.start, bar.end, step), onset_grid(orig, bar.start, bar.end, step)
        scores.append(1.0 - np.count_nonzero(a ^ b) / len(a))
    return float(np.mean(scores))


def groove_consistency(score: Score, region: Region, faithful: bool = False) -> float:
    """1 - sum over consecutive bars of |g_i XOR g_i+1| / (Q (N - 1)): how steady the rhythm is.

    Undefined (NaN) for a single bar or an empty span. ``faithful``: the original's denominator
    Q N, with 1 for a single bar or an empty span.
    """
    step = grid_step(region.tpq)
    notes = track_notes(score, region.track)
    width = max(bar.end - bar.start for bar in region.bars) // step
    grids = []
    for bar in region.bars:
        grid = np.zeros(width, dtype=bool)
        part = onset_grid(notes, bar.start, bar.end, step)
        grid[: len(part)] = part
        grids.append(grid)
    grids = np.stack(grids)
    n = len(grids)
    if faithful:
        return float(1.0 - np.count_nonzero(grids[1:] ^ grids[:-1]) / (width * n))
    if n < 2 or not grids.any():
        return float("nan")
    return float(1.0 - np.count_nonzero(grids[1:] ^ grids[:-1]) / (width * (n - 1)))


def pitch_class_entropy(score: Score, region: Region) -> float:
    """H = -sum p log2 p of the 12-bin pitch-class histogram of notes starting in the span; NaN if none."""
    pitches = span_notes(score, region).pitch
    if not len(pitches):
        return float("nan")
    p = np.bincount(pitches % 12, minlength=12) / len(pitches)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def pitch_class_entropy_difference(generated: Score, original: Score, region: Region) -> float:
    """|H_gen - H_orig| (see :func:`pitch_class_entropy`); NaN when either span has no notes."""
    return abs(pitch_class_entropy(generated, region) - pitch_class_entropy(original, region))


def _match_onsets(a: np.ndarray, b: np.ndarray, tolerance: int) -> int:
    """Size of a largest one-to-one matching of sorted onsets a and b with |a_i - b_j| <= tolerance.

    Greedy is optimal on a line.
    """
    i = j = matched = 0
    while i < len(a) and j < len(b):
        if abs(int(a[i]) - int(b[j])) <= tolerance:
            matched, i, j = matched + 1, i + 1, j + 1
        elif b[j] < a[i]:
            j += 1
        else:
            i += 1
    return matched


def onset_f1(generated: Score, original: Score, region: Region) -> float:
    """F1 of note onsets: a generated note matches at most one original note of the same pitch whose
    onset is within a 1/32 note (tpq / 8 ticks). P = m / n_gen, R = m / n_orig.

    Both spans empty: NaN (nothing to find); one empty: 0.
    """
    gen = span_notes(generated, region)
    orig = span_notes(original, region)
    if not len(gen) and not len(orig):
        return float("nan")
    tolerance = max(1, region.tpq // 8)
    matched = 0
    for pitch in np.intersect1d(gen.pitch, orig.pitch):
        matched += _match_onsets(
            np.sort(gen.time[gen.pitch == pitch]), np.sort(orig.time[orig.pitch == pitch]), tolerance
        )
    if matched == 0:
        return 0.0
    precision, recall = matched / len(gen), matched / len(orig)
    return 2 * precision * recall / (precision + recall)


def note_density_difference(generated: Score, original: Score, region: Region) -> float:
    """|notes per bar, generated - original| over the span."""

    def per_bar(score: Score) -> float:
        return len(span_notes(score, region)) / len(region.bars)

    return abs(per_bar(generated) - per_bar(original))


def _mean_polyphony(notes: Notes) -> float:
    """Notes starting together, averaged over distinct onsets; NaN without notes."""
    if not len(notes):
        return float("nan")
    _, counts = np.unique(notes.time, return_counts=True)
    return float(counts.mean())


def polyphony_difference(generated: Score, original: Score, region: Region) -> float:
    """|mean onset polyphony, generated - original|; NaN when either span has no notes."""
    gen = span_notes(generated, region)
    orig = span_notes(original, region)
    return abs(_mean_polyphony(gen) - _mean_polyphony(orig))


def pitch_range_difference(generated: Score, original: Score, region: Region) -> float:
    """|(max - min pitch), generated - original| in semitones; NaN when either span has no notes."""

    def span(score: Score) -> float:
        pitches = span_notes(score, region).pitch
        return float(pitches.max() - pitches.min()) if len(pitches) else float("nan")

    return abs(span(generated) - span(original))


def out_of_register(generated: Score, original: Score, region: Region) -> float:
    """Share of the generated span's notes outside the pitch range the track plays in its context.

    The context is the original track outside the span; a whole track (no context) is held to the original's
    own range. NaN when the span has no generated note or the track no reference note.
    """
    pitches = span_notes(generated, region).pitch
    whole = track_notes(original, region.track)
    outside = (whole.time < region.start) | (whole.time >= region.end)
    reference = whole.pitch[outside] if outside.any() else whole.pitch
    if not len(pitches) or not len(reference):
        return float("nan")
    return float(np.mean((pitches < reference.min()) | (pitches > reference.max())))


def repeated_onsets(score: Score, region: Region) -> float:
    """Share of the span's onsets that sound exactly the pitches of the onset before them.

    For a melody: how often a note repeats the previous note's pitch. A descriptive number, read against the
    original's row (a sampler can repeat more or less than the music does); NaN with fewer than 2 onsets.
    """
    notes = span_notes(score, region)
    chords = [frozenset(notes.pitch[notes.time == t].tolist()) for t in np.unique(notes.time)]
    if len(chords) < 2:
        return float("nan")
    return float(np.mean([a == b for a, b in zip(chords, chords[1:])]))


def music_metrics(generated: Score, original: Score, region: Region, faithful: bool = False) -> dict[str, float]:
    """Every similarity metric of one generation, by name (the names used in reports)."""
    return {
        "content_preservation": content_preservation(generated, original, region, faithful),
        "groove_similarity": groove_similarity(generated, original, region),
        "groove_consistency": groove_consistency(generated, region, faithful),
        "pche_difference": pitch_class_entropy_difference(generated, original, region),
        "onset_f1": onset_f1(generated, original, region),
        "density_difference": note_density_difference(generated, original, region),
        "polyphony_difference": polyphony_difference(generated, original, region),
        "pitch_range_difference": pitch_range_difference(generated, original, region),
        "out_of_register": out_of_register(generated, original, region),
        "repeated_onsets": repeated_onsets(generated, region),
    }
