import pytest

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer import BarControls
from midi_rwkv.tokenizer.controls import bar_controls, track_controls
from tests.conftest import TPQ, make_score


def _controls(tok, score, track=0):
    piece = tok.prepare(score)
    return bar_controls(piece.score.tracks[track], piece.token_bars, piece.score.ticks_per_quarter)


def test_each_bar_counts_only_its_own_notes(tok):
    # docs/original-release.md#bar-controls: bars with 3, 2, 4, 1, 2 notes; the original gives 9 for bar 2
    # when asked for bars [2, 3, 4]
    bar = 4 * TPQ
    notes = [(b * bar + k * TPQ, TPQ, 60, 80) for b, count in enumerate([3, 2, 4, 1, 2]) for k in range(count)]
    controls = _controls(tok, make_score([(0, 4, 4)], [(0, False, notes)]))
    assert [c.density for c in controls] == [3, 2, 4, 1, 2]


def test_hand_counted_bar_controls(tok):
    bar = 4 * TPQ
    notes = [
        # bar 0: a 3-note chord (quarter) then two single eighths -> polyphony 1..3
        (0, TPQ, 60, 80),
        (0, TPQ, 64, 80),
        (0, TPQ, 67, 80),
        (TPQ, TPQ // 2, 62, 80),
        (3 * TPQ, TPQ // 2, 65, 80),
        # bar 1: one whole note
        (bar, 4 * TPQ, 48, 80),
        # bar 2: empty
        # bar 3: 20 sixteenths -> density 18+
        *[(3 * bar + k * TPQ // 4, TPQ // 4, 72, 80) for k in range(16)],
        *[(3 * bar + k * TPQ // 4, TPQ // 4, 76, 80) for k in range(4)],
    ]
    controls = _controls(tok, make_score([(0, 4, 4)], [(0, False, notes)]))
    assert controls[0] == BarControls(5, (1, 3), (False, False, True, True, False))
    assert controls[1] == BarControls(1, (1, 1), (True, False, False, False, False))  # one note: its own flags
    assert controls[2] == BarControls(0, None, (False,) * 5)  # empty: no onset, so no polyphony
    assert controls[3].density == 18 and controls[3].polyphony == (1, 2)
    assert controls[3].tokens()[2] == "ACBarNoteDensity_18+"
    assert controls[2].tokens() == ["ACBarNoteDensity_0"] + [
        f"ACBarNoteDuration{n}_0" for n in ("Whole", "Half", "Quarter", "Eight", "Sixteenth")
    ]


def test_every_control_token_is_in_the_vocabulary(tok):
    controls = [BarControls(d, (1, 6), (True, False, True, False, True)) for d in range(25)]
    for c in controls:
        tok.codec.atomic(c.tokens())  # raises KeyError if a name is wrong


def test_drum_tracks_get_density_only(tok, band):
    piece = tok.prepare(band)
    drums = bar_controls(piece.score.tracks[1], piece.token_bars, piece.score.ticks_per_quarter)
    assert drums[0] == BarControls(8) and drums[0].tokens() == ["ACBarNoteDensity_8"]


def test_track_controls_tokens(tok, waltz):
    piece = tok.prepare(waltz)
    tc = track_controls(piece.score.tracks[0], piece.token_bars, piece.score.ticks_per_quarter)
    assert tc.density == (0, 6) and tc.polyphony == (1, 1)
    tok.codec.atomic(tc.tokens())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(density=-1),
        dict(density=3, polyphony=(0, 2)),
        dict(density=3, polyphony=(4, 2)),
        dict(density=3, durations=(True,)),
    ],
    ids=["negative-density", "polyphony-zero", "polyphony-reversed", "short-durations"],
)
def test_malformed_controls_raise(kwargs):
    with pytest.raises(ControlError):
        BarControls(**kwargs)
