"""Tests that kill the mutants of ``midi_rwkv/tokenizer/controls.py`` the other tests let survive (docs/testing.md).

The statistics are checked on a hand-made track over hand-made bars (ticks per quarter 4), and the controls, their
tokens, their error and their defaults on hand-made values.
"""

import math
import warnings

import numpy as np
import pytest
from symusic import Note, Track

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer.controls import (
    REPETITION_BINS,
    BarControls,
    BarStatistics,
    TrackControls,
    bar_controls,
    bar_statistics,
    check_drum_controls,
    control_error,
    controls_of_bars,
    controls_of_track,
    describe_controls,
    track_controls,
    typical_track_controls,
)
from midi_rwkv.tokenizer.metre import Bar

F, T = False, True
TPQ = 4
BARS = [Bar(0, 16, 4, 4), Bar(16, 32, 4, 4), Bar(32, 44, 3, 4), Bar(44, 60, 4, 4), Bar(60, 76, 4, 4)]
NOTES = [
    # bar 0: a whole and a quarter together, an eighth, a sixteenth on the bar's last tick
    (0, 16, 60), (0, 4, 64), (8, 2, 67), (15, 1, 70),
    # bar 1: three of bar 0's four (onset, pitch) pairs again
    (16, 4, 60), (16, 4, 64), (24, 2, 67),
    # bar 2 (3/4): one note lasting none of the five lengths
    (32, 3, 60),
    # bar 3: empty; bar 4: seven notes together on its first tick (polyphony 7 clamps to 6), one pair twice
    *[(60, 4, p) for p in range(50, 57)], (60, 2, 50),
    (76, 4, 60),  # past the last bar
]


def track(is_drum: bool = False) -> Track:
    t = Track(name="t", program=0, is_drum=is_drum)
    for time, duration, pitch in NOTES:
        t.notes.append(Note(time, duration, pitch, 80))
    return t


def stats() -> BarStatistics:
    return bar_statistics(track(), BARS, TPQ)


def test_bar_statistics_count_each_bar_s_own_notes_onsets_lengths_and_repeats():
    s = stats()
    assert len(s) == 5
    assert s.count.tolist() == [4, 3, 1, 0, 8]
    assert s.poly_min.tolist() == [1, 1, 1, 0, 6] and s.poly_max.tolist() == [2, 2, 1, 0, 6]
    assert s.durations.tolist() == [[T, F, T, T, T], [F, F, T, T, F], [F] * 5, [F] * 5, [F, F, T, T, F]]
    assert s.pairs.tolist() == [4, 3, 1, 0, 7]
    # bar 2 is shorter than the others; an empty bar and the last bars compare with nothing
    assert s.repeats.tolist() == [[3, -1, 0], [-1, 0, 0], [-1, -1, -1], [-1, -1, -1], [-1, -1, -1]]
    repetition = s.repetition
    assert repetition[0, 0] == 0.75 and repetition[0, 2] == 0 and repetition[1, 1] == 0
    assert np.isnan(repetition[0, 1]) and np.isnan(repetition[3]).all()


def test_bar_statistics_are_compact_integer_and_flag_rows():
    s = stats()
    assert (s.count.dtype, s.poly_min.dtype, s.poly_max.dtype) == (np.int32, np.int8, np.int8)
    assert (s.durations.dtype, s.pairs.dtype, s.repeats.dtype) == (np.bool_, np.int32, np.int32)


def test_the_controls_of_each_bar():
    s = stats()
    assert controls_of_bars(s, False) == [
        BarControls(4, (1, 2), (T, F, T, T, T)),
        BarControls(3, (1, 2), (F, F, T, T, F)),
        BarControls(1, (1, 1), (F,) * 5),
        BarControls(0, None, (F,) * 5),
        BarControls(8, (6, 6), (F, F, T, T, F)),
    ]
    assert controls_of_bars(s, True) == [BarControls(n) for n in (4, 3, 1, 0, 8)]
    assert controls_of_bars(s, False, 1, 3) == controls_of_bars(s, False)[1:3]
    assert bar_controls(track(), BARS, TPQ) == controls_of_bars(s, False)
    assert bar_controls(track(is_drum=True), BARS, TPQ) == controls_of_bars(s, True)


def test_the_controls_of_a_window_of_bars():
    s = stats()
    # repetition: the shares 0.75, 0, 0, 0 inside the window, mean 0.1875, nearest bin 2/9
    whole = TrackControls((0, 8), float(REPETITION_BINS[2]), (1, 6), (T, F, T, T, T))
    assert controls_of_track(s, False) == whole  # the empty bar's polyphony 0 is left out of the minimum
    assert track_controls(track(), BARS, TPQ) == whole
    assert controls_of_track(s, True) == TrackControls((0, 8), float(REPETITION_BINS[2]))
    assert track_controls(track(is_drum=True), BARS, TPQ) == TrackControls((0, 8), float(REPETITION_BINS[2]))
    # bars 0..1: only bar 0 against bar 1 lies inside (0.75, nearest bin 7/9)
    assert controls_of_track(s, False, 0, 2) == TrackControls((3, 4), float(REPETITION_BINS[7]), (1, 2),
                                                              (T, F, T, T, T))
    # bars 1..2: nothing comparable inside, repetition 0
    assert controls_of_track(s, False, 1, 3) == TrackControls((1, 3), 0.0, (1, 2), (F, F, T, T, F))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to compare: repetition 0, quietly (no mean of an empty slice)
        assert controls_of_track(s, False, 3, 4) == TrackControls((0, 0), 0.0)  # nothing played: no polyphony
    # bar 0 alone: its comparison with bar 1 lies outside the window
    assert controls_of_track(s, False, 0, 1) == TrackControls((4, 4), 0.0, (1, 2), (T, F, T, T, T))
    # bars 2..3: a bar of one note is played
    assert controls_of_track(s, False, 2, 4) == TrackControls((0, 1), 0.0, (1, 1), (F,) * 5)
    # bars 3..4: max polyphony from the played bar
    assert controls_of_track(s, False, 3, 5) == TrackControls((0, 8), 0.0, (6, 6), (F, F, T, T, F))


def test_densities_past_18_are_capped_everywhere():
    many = BarStatistics(np.array([19, 25]), np.array([1, 1]), np.array([2, 3]), np.zeros((2, 5), bool),
                         np.array([19, 25]), np.full((2, 3), -1))
    assert [c.density for c in controls_of_bars(many, False)] == [18, 18]
    assert [c.density for c in controls_of_bars(many, True)] == [18, 18]
    assert controls_of_track(many, False).density == (18, 18)
    exact = BarStatistics(np.array([17, 18]), np.array([1, 1]), np.array([1, 1]), np.zeros((2, 5), bool),
                          np.array([17, 18]), np.full((2, 3), -1))
    assert [c.density for c in controls_of_bars(exact, False)] == [17, 18]
    assert controls_of_track(exact, True).density == (17, 18)
    assert BarControls(17).tokens() == ["ACBarNoteDensity_17"]
    assert BarControls(18).tokens() == BarControls(30).tokens() == ["ACBarNoteDensity_18+"]


def test_control_tokens_in_order():
    assert BarControls(5, (2, 3), (T, F, T, F, T)).tokens() == [
        "ACBarOnsetPolyphonyMin_2", "ACBarOnsetPolyphonyMax_3", "ACBarNoteDensity_5",
        "ACBarNoteDurationWhole_1", "ACBarNoteDurationHalf_0", "ACBarNoteDurationQuarter_1",
        "ACBarNoteDurationEight_0", "ACBarNoteDurationSixteenth_1",
    ]
    assert TrackControls((2, 20), 1 / 3, (1, 4), (F, T, F, T, F)).tokens() == [
        "ACTrackOnsetPolyphonyMin_1", "ACTrackOnsetPolyphonyMax_4", "ACTrackNoteDensityMin_2",
        "ACTrackNoteDensityMax_18+", "ACTrackNoteDurationWhole_0", "ACTrackNoteDurationHalf_1",
        "ACTrackNoteDurationQuarter_0", "ACTrackNoteDurationEight_1", "ACTrackNoteDurationSixteenth_0",
        "ACTrackRepetition_0.33",
    ]
    assert TrackControls((0, 3), 0.0).tokens() == [
        "ACTrackNoteDensityMin_0", "ACTrackNoteDensityMax_3", "ACTrackRepetition_0.00",
    ]


@pytest.mark.parametrize("polyphony", [(1, 1), (6, 6), (1, 6), (3, 3)])
def test_polyphony_from_1_to_6_is_accepted(polyphony):
    assert BarControls(0, polyphony).polyphony == polyphony
    assert TrackControls((0, 0), 0.0, polyphony).polyphony == polyphony


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(density=-1), "^note density must be 0 or more, got -1$"),
        (dict(density=0, polyphony=(0, 1)), "^polyphony 0-1 must satisfy 1 <= min <= max <= 6$"),
        (dict(density=0, polyphony=(1, 7)), "^polyphony 1-7 must satisfy 1 <= min <= max <= 6$"),
        (dict(density=0, polyphony=(3, 2)), "^polyphony 3-2 must satisfy"),
        (dict(density=0, durations=(T,) * 4), "^duration flags need 5 values, got 4$"),
        (dict(density=0, durations=(T,) * 6), "^duration flags need 5 values, got 6$"),
    ],
)
def test_malformed_bar_controls_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ControlError, match=message):
        BarControls(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(density=(-1, 2)), r"^track density \(-1, 2\) must satisfy 0 <= min <= max$"),
        (dict(density=(3, 2)), r"^track density \(3, 2\) must satisfy"),
        (dict(density=(0, 2), polyphony=(0, 2)), "^polyphony 0-2 must satisfy"),
        (dict(density=(0, 2), durations=(T,)), "^duration flags need 5 values, got 1$"),
    ],
)
def test_malformed_track_controls_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ControlError, match=message):
        TrackControls(repetition=0.0, **kwargs)


def test_drum_tracks_refuse_polyphony_or_durations_and_other_tracks_take_both():
    message = r"^track 3 is a drum track: only note density applies \(no polyphony or duration controls\)$"
    with pytest.raises(ControlError, match=message):
        check_drum_controls(3, True, (1, 2), None)
    with pytest.raises(ControlError, match=message):
        check_drum_controls(3, True, None, (F,) * 5)
    check_drum_controls(3, True, None, None)
    check_drum_controls(3, False, (1, 2), (F,) * 5)
    BarControls(0, None, None), TrackControls((0, 0), 0.0, None, None)  # None needs no check


def test_control_error_adds_every_kind_of_miss():
    want = BarControls(5, (1, 2), (T, F, T, F, F))
    assert control_error([want], [want]) == 0
    got = BarControls(3, (2, 4), (T, T, F, F, F))
    assert control_error([want], [got]) == 2 + (1 + 2) + 2
    assert control_error([want, got], [got, want]) == 2 * 7
    empty, one = BarControls(0, None, (F,) * 5), BarControls(1, (1, 1), (F,) * 5)
    assert control_error([empty], [one]) == control_error([one], [empty]) == 1 + 1  # polyphony on one side: 1
    assert control_error([BarControls(4)], [BarControls(6, (1, 1), (T,) * 5)]) == 2 + 1  # flags on one side: 0
    a = TrackControls((1, 5), float(REPETITION_BINS[2]), (1, 2), (T, F, F, F, F))
    b = TrackControls((2, 3), float(REPETITION_BINS[5]), (1, 3), (F, F, F, F, T))
    assert control_error([a], [b]) == (1 + 2) + 1 + 2 + 3
    assert control_error([a], [a]) == 0 and isinstance(control_error([a], [b]), float)
    assert control_error([TrackControls((0, 0), 0.0)], [TrackControls((0, 0), 1.0)]) == 9  # bins apart
    # a track's controls against one bar's: only what both have counts (a bar has no repetition)
    assert control_error([TrackControls((2, 4), 1.0)], [BarControls(3)]) == 1
    assert control_error([BarControls(3)], [TrackControls((2, 4), 1.0)]) == 1


def test_a_new_track_s_default_controls():
    assert typical_track_controls([], True) == TrackControls((4, 12), 0.0)
    assert typical_track_controls([], False) == TrackControls((2, 8), 0.0, (1, 1), (F, F, T, T, F))
    bins = [float(b) for b in REPETITION_BINS]
    others = [
        TrackControls((1, 4), bins[1], (1, 2), (T, F, T, F, F)),
        TrackControls((3, 9), bins[3], (2, 4), (T, T, F, F, F)),
        TrackControls((2, 5), bins[2], (3, 3)),
        TrackControls((6, 7), bins[9], (2, 5), (F, F, F, F, F)),
    ]
    # medians over the four: density 2.5 -> 2 and 6, polyphony 2 and 3.5 -> 4 (their repetition, halfway between two
    # bins, is left unchecked)
    got = typical_track_controls(others, False)
    assert got.density == (2, 6)
    assert got.polyphony == (2, 4)  # medians 2 and 3.5 -> 4
    assert got.durations == (T, F, F, F, F)  # flags in at least half of the three with flags: whole (2 of 3)
    assert typical_track_controls(others[:2], False).durations == (T, T, T, F, F)  # half of them counts
    assert typical_track_controls(others, True) == TrackControls(got.density, got.repetition)
    three = typical_track_controls(others[:3], False)
    assert three == TrackControls((2, 5), bins[2], (2, 3), (T, T, T, F, F))
    drums_like = [TrackControls((1, 3), bins[4]), TrackControls((5, 9), bins[6])]
    assert typical_track_controls(drums_like, False) == TrackControls((3, 6), bins[5], (1, 1), (F, F, T, T, F))
    assert typical_track_controls(drums_like, True) == TrackControls((3, 6), bins[5])


def test_controls_as_people_read_them():
    assert describe_controls(BarControls(5, (1, 2), (F, F, T, T, F))) == "[density 5 poly 1-2 dur ..QE.]"
    assert describe_controls(BarControls(5, None, (T, T, F, F, T))) == "[density 5 dur WH..S]"
    assert describe_controls(BarControls(3)) == "[density 3]"
    assert describe_controls(TrackControls((2, 8), 1 / 3)) == "[density 2-8 rep 0.33]"
    track = TrackControls((0, 4), 0.0, (1, 3), (F,) * 5)
    assert describe_controls(track) == "[density 0-4 poly 1-3 dur ..... rep 0.00]"
    assert math.isclose(TrackControls((0, 0), 0.5).repetition, 0.5)
