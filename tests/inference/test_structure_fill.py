"""Following the song's form while decoding: the copy distribution (FollowSource), its mixing in the generator,
and bar infills that follow a repeated section."""

import torch
import pytest

from midi_rwkv.inference.constraints import TokenTables
from midi_rwkv.inference.follow import FollowSource
from midi_rwkv.inference.form import (
    FollowSettings,
    FormPlan,
    controls_agree,
    context_to_reach,
    note_values_agree,
    ramp,
)
from midi_rwkv.inference.generator import _mix_proposals
from midi_rwkv.tokenizer import BarControls


def _follow(tok, sources, weights):
    vocab = tok.codec.vocab
    tables = TokenTables.build(tok.codec)
    header = ((vocab.bar, vocab["TimeSig_4/4"]), ())
    return FollowSource(tables, [header] * len(sources), sources, weights, tables.bar), vocab


def test_follow_source_proposes_the_source_bar_then_its_bar_line(tok):
    a, b = tok.codec.vocab["Pitch_60"], tok.codec.vocab["Pitch_64"]
    c, vocab = _follow(tok, [(a, b), (b,)], [0.7, 0.3])
    assert c.proposal() == (a, 0.7)
    c.after_sample(a)
    assert c.proposal() == (b, 0.7)
    c.after_sample(b)
    assert c.proposal() == (vocab.bar, 0.7)  # the source bar is done: end the bar
    c.after_sample(vocab.bar)
    assert c.proposal() == (b, 0.3)  # the second bar follows its own source from its start
    assert c.followed == 3


def test_follow_source_realigns_after_a_skip_and_stops_after_a_departure(tok):
    vocab = tok.codec.vocab
    p = [vocab[f"Pitch_{n}"] for n in (60, 62, 64, 65)]
    c, _ = _follow(tok, [tuple(p), tuple(p)], [1.0, 1.0])
    c.after_sample(p[1])  # skipped p[0]: continue after p[1]
    assert c.proposal() == (p[2], 1.0)
    c.after_sample(vocab["Pitch_40"])  # not in the source: no more proposals in this bar
    assert c.proposal() is None
    c.after_sample(vocab.bar)
    assert c.proposal() == (p[0], 1.0)  # a new bar starts afresh


def test_follow_source_without_source_or_weight_proposes_nothing(tok):
    a = tok.codec.vocab["Pitch_60"]
    c, _ = _follow(tok, [None, (a,)], [1.0, 0.0])
    assert c.proposal() is None
    c.after_sample(tok.codec.vocab.bar)
    assert c.proposal() is None


def test_mixing_takes_the_proposal_with_its_weight_never_a_banned_one():
    banned = torch.zeros(3, 10, dtype=torch.bool)
    banned[2, 7] = True
    drawn = torch.tensor([1, 1, 1])
    _mix_proposals(drawn, [(5, 1.0), (6, 0.0), (7, 1.0)], banned, torch.Generator().manual_seed(0))
    assert drawn.tolist() == [5, 1, 1]
    draws = []
    for seed in range(400):
        one = torch.tensor([1])
        _mix_proposals(one, [(5, 0.25)], torch.zeros(1, 10, dtype=torch.bool), torch.Generator().manual_seed(seed))
        draws.append(one.item() == 5)
    assert 0.18 < sum(draws) / len(draws) < 0.32


def test_mixing_without_proposals_leaves_the_random_stream_alone():
    gen = torch.Generator().manual_seed(3)
    drawn = torch.tensor([4, 4])
    _mix_proposals(drawn, [None, (2, 0.0)], torch.zeros(2, 10, dtype=torch.bool), gen)
    assert drawn.tolist() == [4, 4]
    assert torch.rand(1, generator=gen).item() == torch.rand(1, generator=torch.Generator().manual_seed(3)).item()


def test_weights_ramp_with_the_match_and_controls_gate_them():
    assert ramp([0.4, 0.5, 0.7, 0.9, 1.0], 0.9, floor=0.5).round(6).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert ramp([0.0, 0.45, 0.9], 0.9).round(6).tolist() == [0.0, 0.5, 1.0]  # the default floor: 0
    assert controls_agree(BarControls(6, (1, 1)), BarControls(7, (1, 1)))
    assert not controls_agree(BarControls(6, (1, 1)), BarControls(8, (1, 1)))
    assert not controls_agree(BarControls(6, (1, 2)), BarControls(6, (1, 1)))
    plan = FormPlan(8, 0.95, ((1,), (2,)), (1.0, 0.5), "")
    assert plan.weights_for(0, "follow") == [1.0, 0.5]
    assert plan.weights_for(1, "follow") == [0.5, 0.25]  # at most one candidate is the repeat itself
    assert plan.weights_for(0, "vary") == [0.5, 0.25]


def test_context_reaches_the_source_window():
    assert context_to_reach((20, 24), 4, 16) == 16  # 16 bars before bar 20 reach bar 4
    assert context_to_reach((20, 24), 0, 16) == 20
    assert context_to_reach((20, 24), 40, 16) == 20  # the window ends at bar 44, 20 bars after the span
    assert context_to_reach((20, 24), None, 16) == 16 and context_to_reach((20, 24), 0, None) is None


# ---- bar infills that follow a repeated section (tiny random model: only the copy distribution can repeat) ----

def _abab(tok):
    from tests.structure.test_structure import song

    return tok.prepare(song("ABAB", melody_repeats=True), "abab")


def _span_notes(score, piece, track, bars):
    start, end = piece.bars[bars[0]].start, piece.bars[bars[1] - 1].end
    return sorted((n.time, n.pitch) for n in score.tracks[track].notes if start <= n.time < end)


def test_follow_writes_the_repeat_and_other_candidates_vary_it(tok, tiny_model):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller

    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    first, second = infiller.infill(piece, 0, (8, 12), n=2, seed=0, max_tokens=250)
    original = _span_notes(piece.original, piece, 0, (8, 12))
    assert original and _span_notes(first.score, piece, 0, (8, 12)) == original  # bars 1-4 repeat: copied exactly
    assert _span_notes(second.score, piece, 0, (8, 12)) != original  # half the weight: a variation, not the repeat
    assert "bars 1-4 are a repeat" in first.form and "4 of 4 bars follow" in first.form
    plain = infiller.with_structure("off").infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=250)[0]
    assert _span_notes(plain.score, piece, 0, (8, 12)) != original and plain.form is None


def test_a_bar_whose_controls_differ_from_its_source_follows_the_controls(tok, tiny_model):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import ControlRequest, Infiller

    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    enc = tok.encode(piece)
    asked = enc.bar_controls(piece.track_index(0), piece.token_span(8, 12))
    changed = [c.density for c in asked]
    changed[1] += 3
    (c,) = infiller.infill(piece, 0, (8, 12), ControlRequest(density=changed), n=1, seed=0, max_tokens=250)
    plan = infiller.form_plan(piece, enc, 0, (8, 12), c.requested, free=False)
    assert plan.weights == (1.0, 0.0, 1.0, 1.0)
    assert "3 of 4 bars follow" in c.form
    free = infiller.form_plan(piece, enc, 0, (8, 12), c.requested, free=True)
    assert free.weights == (1.0, 1.0, 1.0, 1.0)  # free infilling asks for no controls: none gate the copy


def test_a_song_without_other_tracks_gets_the_model_alone_and_says_so(tok, tiny_model, waltz):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller

    solo = waltz.copy()
    del solo.tracks[1]
    piece = tok.prepare(solo, "solo")
    (c,) = Infiller(Generator(tiny_model), tok, structure="follow").infill(piece, 0, (2, 4), n=1, seed=0,
                                                                           max_tokens=300)
    assert c.form.startswith("form: no window") and "model alone" in c.form


def test_a_bar_followed_token_for_token_keeps_its_source_notes(tok, tiny_model):
    from midi_rwkv.inference.follow import FollowSource

    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller
    from tests.structure.test_structure import song

    score = song("ABAB", melody_repeats=True)
    for note in score.tracks[0].notes:  # played, not quantised: the same nudge in every repeat
        note.time += 7
        note.velocity = 61
    piece = tok.prepare(score, "played")
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    original = sorted((n.time, n.duration, n.pitch, n.velocity) for n in piece.original.tracks[0].notes
                      if piece.bars[8].start <= n.time < piece.bars[12].start)
    (kept,) = infiller.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=250)
    written = sorted((n.time, n.duration, n.pitch, n.velocity) for n in kept.score.tracks[0].notes
                     if piece.bars[8].start <= n.time < piece.bars[12].start)
    assert written == original
    quantised = infiller.with_structure("follow", FollowSettings(source_timing=False))
    (plain,) = quantised.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=250)
    assert sorted((n.time, n.pitch) for n in plain.score.tracks[0].notes) != sorted(
        (n.time, n.pitch) for n in kept.score.tracks[0].notes)  # the tokenizer's grid, not the played times
    tables = infiller.tables
    c = FollowSource(tables, [((tok.codec.vocab.bar,), ())] * 2, [(5,), (5, 6)], [1.0, 1.0], tables.bar)
    c.after_sample(5)
    c.after_sample(tables.bar)
    c.after_sample(6)  # skipped the 5
    c.after_sample(tables.bar)
    assert c.exact == [True, False]


def test_a_whole_track_written_again_repeats_itself_where_the_song_repeats(tok, tiny_model):
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller



    piece = _abab(tok)
    assert Infiller(Generator(tiny_model), tok, structure="follow").track_repeats(piece, 0, 16) == (None, [])  # default
    infiller = Infiller(Generator(tiny_model), tok).with_structure("follow", FollowSettings(tracks=True))
    earlier, weights = infiller.track_repeats(piece, 0, piece.num_bars)
    assert earlier[8:12] == [3, 1, 2, 8] and earlier[:3] == [None, None, None]  # A comes back (bar 3 is bar 0)
    (c,) = infiller.regenerate_track(piece, 0, n=1, seed=0, max_tokens=3000)

    def bar(k):
        b = piece.bars[k]
        return sorted((n.time - b.start, n.pitch) for n in c.score.tracks[0].notes if b.start <= n.time < b.end)

    assert any(bar(k) for k in range(4))
    assert [bar(k) for k in (9, 10)] == [bar(1), bar(2)]  # the second A as the model wrote the first
    assert infiller.with_structure("off").track_repeats(piece, 0, piece.num_bars) == (None, [])


def test_note_values_agree_within_the_slack_and_when_either_side_names_none():
    quarter, quarter_eighth, half_eighth = (0, 0, 1, 0, 0), (0, 0, 1, 1, 0), (0, 1, 0, 1, 0)
    assert note_values_agree(BarControls(4, None, quarter), BarControls(4, None, quarter))
    assert not note_values_agree(BarControls(4, None, quarter), BarControls(4, None, quarter_eighth))
    assert note_values_agree(BarControls(4, None, quarter), BarControls(4, None, quarter_eighth), slack=1)
    assert not note_values_agree(BarControls(4, None, quarter), BarControls(4, None, half_eighth), slack=2 - 1)
    assert note_values_agree(BarControls(4, None, None), BarControls(4, None, half_eighth))
    assert note_values_agree(BarControls(4, None, quarter), BarControls(4))


def test_note_values_gate_a_bar_beyond_the_slack_or_keep_a_share_of_its_weight(tok, tiny_model):
    from dataclasses import replace

    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.inference.infiller import Infiller

    piece = _abab(tok)
    enc = tok.encode(piece)
    source = enc.bar_controls(piece.track_index(0), piece.token_span(0, 4))
    flipped = [tuple(1 - f if k < n else f for k, f in enumerate(c.durations)) for c, n in zip(source, (0, 1, 2, 5))]
    asked = [replace(c, durations=d) for c, d in zip(source, flipped)]  # 0, 1, 2 and 5 flags differ

    def weights(**follow):
        infiller = Infiller(Generator(tiny_model), tok).with_structure("follow", FollowSettings(**follow))
        return infiller.form_plan(piece, enc, 0, (8, 12), asked, free=False).weights

    assert weights() == (1.0, 1.0, 0.0, 0.0)  # by default one flag may differ, in every bar (rule 7)
    assert weights(durations_below=0) == (1.0, 1.0, 1.0, 1.0)  # note values never gate
    assert weights(durations_below=1.01, duration_slack=0) == (1.0, 0.0, 0.0, 0.0)
    assert weights(durations_below=1.01, duration_slack=1) == (1.0, 1.0, 0.0, 0.0)
    assert weights(durations_below=1.01, duration_slack=1, duration_keep=0.5) == (1.0, 1.0, 0.5, 0.5)
    assert weights(durations_below=0.5, duration_slack=0) == (1.0, 1.0, 1.0, 1.0)  # a repeat matches above 0.5
    with pytest.raises(ValueError):
        FollowSettings(duration_slack=6)
