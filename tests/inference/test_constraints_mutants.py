"""Tests that kill the mutants of ``midi_rwkv/inference/constraints.py`` the other tests let survive (docs/testing.md).

They run without a model: the token tables are built for hand-made pieces over the base vocabulary, and the
constraint is driven token by token over small hand-made tables.
"""

from types import SimpleNamespace

import pytest
import torch

from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables


def test_the_token_tables_describe_each_piece_as_the_bar_body_rules_need(tok):
    vocab = tok.codec.vocab
    bar, pos, vel, dur = vocab.bar, vocab["Position_0"], vocab["Velocity_15"], vocab["Duration_0.4.12"]
    p60, p62, p64, drum = vocab["Pitch_60"], vocab["Pitch_62"], vocab["Pitch_64"], vocab["PitchDrum_36"]
    # piece: starts a bar, banned, lowest pitch, highest, drum, notes, note tail, leaves open, closes, finishes
    expected = {
        (bar,): (True, False, 128, -1, False, 0, False, False, False, 0),
        (bar, pos): (True, False, 128, -1, False, 0, False, False, False, 0),
        (bar, vocab["Program_0"]): (True, False, 128, -1, False, 0, False, False, False, 0),  # a bar is never banned
        (pos, bar): (False, True, 128, -1, False, 0, False, False, False, 0),  # a bar line inside a piece
        (): (False, True, 128, -1, False, 0, False, False, False, 0),
        (pos,): (False, False, 128, -1, False, 0, False, False, False, 0),
        (p60,): (False, False, 60, 60, False, 1, False, True, False, 0),
        (p60, vel, dur): (False, False, 60, 60, False, 1, False, False, False, 1),
        (p62, vel, dur, p64): (False, False, 62, 64, False, 2, False, True, False, 1),
        (p64, p60, dur, p62): (False, False, 60, 64, False, 3, False, True, False, 1),
        (dur, p62, vel, dur): (False, False, 62, 62, False, 1, False, False, True, 1),
        (vel, dur): (False, False, 128, -1, False, 0, True, False, True, 0),
        (dur,): (False, False, 128, -1, False, 0, True, False, True, 0),
        (vel,): (False, False, 128, -1, False, 0, True, False, False, 0),
        (drum,): (False, False, 128, -1, True, 1, False, True, False, 0),
        (pos, drum, p60, dur): (False, False, 60, 60, True, 2, False, False, False, 1),
        (vocab["Program_0"],): (False, True, 128, -1, False, 0, False, False, False, 0),
        (vocab["TimeSig_3/4"],): (False, True, 128, -1, False, 0, False, False, False, 0),
        (pos, vocab["TimeSig_3/4"]): (False, False, 128, -1, False, 0, False, False, False, 0),  # only a leading one
        (vocab["FillBar_End"],): (False, True, 128, -1, False, 0, False, False, False, 0),
        (vocab["Track_End"],): (False, True, 128, -1, False, 0, False, False, False, 0),
        (vocab["ACBarNoteDensity_2"],): (False, True, 128, -1, False, 0, False, False, False, 0),
    }
    pieces = list(expected)
    tables = TokenTables.build(SimpleNamespace(vocab=vocab, pieces=pieces))
    columns = (tables.starts_bar, tables.banned, tables.pitch_low, tables.pitch_high, tables.drum_pitch,
               tables.notes, tables.note_tail, tables.leaves_open, tables.closes, tables.finishes)
    for k, piece in enumerate(pieces):
        names = [vocab.tokens[i] for i in piece]
        assert tuple(column[k].item() for column in columns) == expected[piece], names
    assert (tables.fill_end, tables.track_end, tables.bar) == (vocab["FillBar_End"], vocab["Track_End"], vocab.bar)


def test_a_register_s_bounds_are_inside_it(tok):
    tables = TokenTables.build(tok.codec)
    vocab = tok.codec.vocab
    outside = tables.outside(55, 70)
    assert not outside[vocab["Pitch_55"]] and not outside[vocab["Pitch_70"]]
    assert outside[vocab["Pitch_54"]] and outside[vocab["Pitch_71"]] and outside[vocab["PitchDrum_60"]]
    assert not outside[vocab["Position_0"]] and not outside[vocab.bar]


# hand-made tables: 0 a bar start, 1 a position, 2 a pitch (its note left open), 3 a two-note token ending in a
# duration, 4 a special token, 5 a velocity-and-duration tail (closes the open note), 6 a duration, then a whole
# note (closes the open note and finishes one of its own)
T, F = True, False
TABLES = TokenTables(
    starts_bar=torch.tensor([T, F, F, F, F, F, F]), banned=torch.tensor([F, F, F, F, T, F, F]), fill_end=4,
    track_end=4, notes=torch.tensor([0, 0, 1, 2, 0, 0, 1]), note_tail=torch.tensor([F, F, F, F, F, T, F]),
    leaves_open=torch.tensor([F, F, T, F, F, F, F]), closes=torch.tensor([F, F, F, F, F, T, T]),
    finishes=torch.tensor([0, 0, 0, 2, 0, 0, 1]),
)
EVERY = [0, 1, 2, 3, 5, 6]  # all but the special token


def allowed(c: BarInfillConstraint) -> list[int]:
    return (~c.banned()).nonzero()[:, 0].tolist()


def bars(n: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    return [((0, 10 + k), (20 + k,)) for k in range(n)]


def test_a_constraint_starts_in_its_first_bar_empty_and_not_done():
    c = BarInfillConstraint(TABLES, bars(2))
    assert (c.current, c.notes, c.finished, c.open, c.rest, c.done) == (0, 0, 0, False, 0, False)
    assert c.done is False and c.end == 4 and allowed(c) == EVERY


def test_a_whole_track_ends_with_its_own_end_token_after_exactly_its_bars():
    c = BarInfillConstraint(TABLES, bars(3), end=99)
    assert c.after_sample(1) == [1] and not c.done
    assert c.after_sample(0) == [0, 11, 21] and not c.done
    assert c.after_sample(0) == [0, 12, 22] and not c.done
    assert c.after_sample(0) == [99] and c.done is True


def test_a_note_limit_counts_the_notes_of_each_token():
    c = BarInfillConstraint(TABLES, bars(2), max_notes=3)
    assert allowed(c) == EVERY  # room 3
    c.after_sample(2)
    assert allowed(c) == EVERY  # room 2: the two-note token still fits
    c.after_sample(5), c.after_sample(6)
    assert c.notes == 2 and allowed(c) == [0, 1, 2, 5, 6]  # room 1: the two-note token would overfill the bar
    c.after_sample(6)
    assert allowed(c) == [0]  # full, its last note finished
    one = BarInfillConstraint(TABLES, bars(1), max_notes=1)
    assert allowed(one) == [0, 1, 2, 5, 6]  # room 1 at the start: single notes fit


def test_a_bar_allowed_no_notes_only_starts_a_bar_and_may_end_even_after_long_rests():
    c = BarInfillConstraint(TABLES, bars(3), max_notes=[None, 0, 0], max_rest=0)
    c.after_sample(6)  # bar 1 has a note
    c.after_sample(0)
    assert allowed(c) == [0]  # no note may start, no tail either: nothing is open in a new bar
    c.after_sample(0)
    assert c.rest == 1 and allowed(c) == [0]  # the rest limit is passed, but the bar may hold no note
    fresh = BarInfillConstraint(TABLES, bars(1), max_notes=0)
    assert allowed(fresh) == [0]


def test_a_note_limit_alone_never_keeps_a_bar_from_ending():
    c = BarInfillConstraint(TABLES, bars(2), max_notes=4)
    assert 0 in allowed(c)
    c.after_sample(1)
    assert 0 in allowed(c)


@pytest.mark.parametrize("max_rest", [1, 2])
def test_a_rest_limit_lets_that_many_empty_bars_pass(max_rest):
    c = BarInfillConstraint(TABLES, bars(4), max_rest=max_rest)
    for k in range(max_rest):
        assert 0 in allowed(c), k  # bar k may still end empty
        c.after_sample(1), c.after_sample(0)
        assert c.rest == k + 1
    assert allowed(c) == [1, 2, 3, 5, 6]  # the next bar must have a note


def test_a_finished_note_stays_counted_and_a_closed_note_counts_with_the_whole_note_after_it():
    c = BarInfillConstraint(TABLES, bars(3), max_rest=0)
    assert 0 not in allowed(c)  # no empty bar at all
    c.after_sample(2), c.after_sample(5)  # a pitch, then its tail: one finished note
    c.after_sample(1)  # a position adds nothing and takes nothing away
    assert c.finished == 1 and 0 in allowed(c)
    c.after_sample(0)
    c.after_sample(2), c.after_sample(6)  # an open pitch closed by a token that also holds a whole note
    assert c.finished == 2 and c.notes == 2 and not c.open and 0 in allowed(c)


def test_the_wrong_number_of_note_limits_is_refused_with_the_counts():
    with pytest.raises(ValueError, match="^1 note limits for 2 bars$"):
        BarInfillConstraint(TABLES, bars(2), max_notes=[3])
    assert BarInfillConstraint(TABLES, bars(2), max_notes=(3, None)).limits == [3, None]
