"""Each metric on hand-built scores with values worked out by hand."""

from __future__ import annotations

import math

import pytest

from midi_rwkv.metrics import (
    Region,
    content_preservation,
    groove_consistency,
    groove_similarity,
    music_metrics,
    note_density_difference,
    onset_f1,
    pitch_class_entropy,
    pitch_class_entropy_difference,
    pitch_range_difference,
    polyphony_difference,
    repeated_onsets,
)
from midi_rwkv.tokenizer.metre import Bar
from tests.conftest import TPQ, make_score

BAR = 4 * TPQ
Q = TPQ  # a quarter note
TWO_BARS = Region(0, (Bar(0, BAR, 4, 4), Bar(BAR, 2 * BAR, 4, 4)), TPQ)


def score(notes, time_signature=(0, 4, 4)):
    return make_score([time_signature], [(0, False, [(t, d, p, 80) for t, d, p in notes])])


QUARTERS = score([(i * Q, Q, 60 + (i % 4)) for i in range(8)])  # C C# D D# per bar, one per beat


def test_identical_scores_reach_every_ceiling():
    values = music_metrics(QUARTERS, QUARTERS, TWO_BARS)
    assert values["content_preservation"] == pytest.approx(1.0)
    assert values["groove_similarity"] == 1.0
    assert values["onset_f1"] == 1.0
    for name in ("pche_difference", "density_difference", "polyphony_difference", "pitch_range_difference"):
        assert values[name] == 0.0


def test_content_preservation_of_disjoint_pitch_classes_is_zero():
    other = score([(i * Q, Q, 66) for i in range(8)])  # F# throughout: no pitch class in common
    assert content_preservation(other, QUARTERS, TWO_BARS) == pytest.approx(0.0, abs=1e-9)


def test_content_preservation_counts_shared_silence_as_a_match_unless_faithful():
    first_bar_only = score([(0, BAR, 60)])
    # bar 2 is silent in both. Smoothing spans 8 frames, so frames 16-19 still see bar 1's note;
    # frames 20-31 are silent in both: 12 of 32 frames.
    fixed = content_preservation(first_bar_only, first_bar_only, TWO_BARS)
    faithful = content_preservation(first_bar_only, first_bar_only, TWO_BARS, faithful=True)
    assert fixed == pytest.approx(1.0)
    assert faithful == pytest.approx(20 / 32)


def test_content_preservation_counts_held_notes():
    held = score([(-0 + 0, 2 * BAR, 60)])  # one note held across both bars
    also_held = score([(0, 2 * BAR, 72)])  # the same pitch class an octave up
    assert content_preservation(also_held, held, TWO_BARS) == pytest.approx(1.0)


def test_groove_similarity_by_hand():
    # grid of 32 cells per 4/4 bar at tpq / 8. Original: onsets on the 4 beats of each bar.
    # Generated bar 1: the same; bar 2: onsets on beats 1 and 3 plus two off-beat eighths -> 2 shared,
    # 2 missing, 2 extra: 4 differing cells of 32.
    eighth = Q // 2
    gen = score(
        [(i * Q, Q, 60) for i in range(4)]
        + [(BAR, Q, 60), (BAR + 2 * Q, Q, 60), (BAR + eighth, Q, 60), (BAR + 3 * Q + eighth, Q, 60)]
    )
    assert groove_similarity(gen, QUARTERS, TWO_BARS) == pytest.approx((1.0 + (1 - 4 / 32)) / 2)


def test_groove_consistency_fixed_and_faithful():
    # bar 1: 4 onsets; bar 2: 2 of them -> 2 differing cells of 32
    gen = score([(i * Q, Q, 60) for i in range(4)] + [(BAR, Q, 60), (BAR + 2 * Q, Q, 60)])
    assert groove_consistency(gen, TWO_BARS) == pytest.approx(1 - 2 / 32)
    assert groove_consistency(gen, TWO_BARS, faithful=True) == pytest.approx(1 - 2 / 64)
    empty = score([])
    assert math.isnan(groove_consistency(empty, TWO_BARS))
    assert groove_consistency(empty, TWO_BARS, faithful=True) == 1.0  # the original calls silence perfect


def test_pitch_class_entropy_by_hand():
    assert pitch_class_entropy(QUARTERS, TWO_BARS) == pytest.approx(2.0)  # 4 pitch classes, equally often
    one_class = score([(i * Q, Q, 60 + 12 * (i % 2)) for i in range(8)])
    assert pitch_class_entropy(one_class, TWO_BARS) == 0.0
    assert pitch_class_entropy_difference(one_class, QUARTERS, TWO_BARS) == pytest.approx(2.0)
    assert math.isnan(pitch_class_entropy(score([]), TWO_BARS))


def test_onset_f1_matches_one_to_one_within_a_32nd():
    original = score([(0, Q, 60), (Q, Q, 62)])
    # two generated C4s near the one original C4: only one may match; D4 is 1/32 late (allowed)
    generated = score([(0, Q, 60), (10, Q, 60), (Q + TPQ // 8, Q, 62)])
    precision, recall = 2 / 3, 2 / 2
    assert onset_f1(generated, original, TWO_BARS) == pytest.approx(2 * precision * recall / (precision + recall))
    too_late = score([(0, Q, 60), (Q + TPQ // 8 + 1, Q, 62)])
    assert onset_f1(too_late, original, TWO_BARS) == pytest.approx(0.5)
    assert onset_f1(score([]), original, TWO_BARS) == 0.0
    assert math.isnan(onset_f1(score([]), score([]), TWO_BARS))


def test_density_polyphony_and_range_differences():
    chords = score([(0, Q, 60), (0, Q, 64), (0, Q, 67), (Q, Q, 72)])  # 4 notes, onsets of 3 and 1, range 12
    single = score([(0, Q, 60), (Q, Q, 62)])  # 2 notes, onsets of 1 and 1, range 2
    assert note_density_difference(chords, single, TWO_BARS) == pytest.approx(1.0)  # (4 - 2) notes / 2 bars
    assert polyphony_difference(chords, single, TWO_BARS) == pytest.approx(1.0)  # mean 2 vs 1
    assert pitch_range_difference(chords, single, TWO_BARS) == 10.0


def test_metrics_see_only_the_region():
    outside = score([(i * Q, Q, 60 + (i % 4)) for i in range(8)] + [(2 * BAR, Q, 30)])
    assert music_metrics(outside, QUARTERS, TWO_BARS)["density_difference"] == 0.0


def test_repeated_onsets_counts_onsets_that_sound_the_pitches_before_them():
    melody = score([(0, Q, 60), (Q, Q, 60), (2 * Q, Q, 62), (3 * Q, Q, 62), (4 * Q, Q, 62), (5 * Q, Q, 64)])
    assert repeated_onsets(melody, TWO_BARS) == pytest.approx(3 / 5)
    chords = score([(0, Q, 60), (0, Q, 64), (Q, Q, 60), (Q, Q, 64), (2 * Q, Q, 60), (2 * Q, Q, 67)])
    assert repeated_onsets(chords, TWO_BARS) == pytest.approx(1 / 2)  # the same chord again, then another
    assert repeated_onsets(QUARTERS, TWO_BARS) == 0.0
    assert math.isnan(repeated_onsets(score([(0, Q, 60)]), TWO_BARS))
