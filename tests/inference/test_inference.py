import pytest
import torch
from symusic import Score

from midi_rwkv.cli import main
from midi_rwkv.errors import ControlError
from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables
from midi_rwkv.inference.generator import Constraint, Generator, TorchEngine
from midi_rwkv.inference.infiller import Candidate, ControlRequest, Infiller
from midi_rwkv.inference.sampler import SamplerConfig, filter_logits, sample
from midi_rwkv.model import save_checkpoint
from midi_rwkv.tokenizer import BarControls
from tests.conftest import FIXTURES, note_tuples

CHORALE = FIXTURES / "bach_bwv66.6.mid"
VARIED = SamplerConfig(temperature=1.0, repetition_penalty=1.2)  # the paper's: the random model strays more with it


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def test_repetition_penalty_lowers_seen_tokens_of_either_sign():
    logits = torch.tensor([[2.0, -2.0, 0.5]])
    seen = torch.tensor([[True, True, False]])
    out = filter_logits(logits, SamplerConfig(1, top_k=0, top_p=1, epsilon=0, repetition_penalty=2.0), seen)
    assert out.tolist() == [[1.0, -4.0, 0.5]]  # the original would have raised -2 to -1


def test_top_k_top_p_epsilon_and_bans():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.0499, 0.0001]]))
    keep = lambda cfg, banned=None: torch.isfinite(filter_logits(logits, cfg, banned=banned))[0].tolist()  # noqa: E731
    assert keep(SamplerConfig(top_k=2, top_p=1, epsilon=0, repetition_penalty=1)) == [True, True, False, False, False]
    assert keep(SamplerConfig(top_k=0, top_p=0.7, epsilon=0, repetition_penalty=1)) == [True, True, False, False, False]
    assert keep(SamplerConfig(top_k=0, top_p=1, epsilon=1e-3, repetition_penalty=1)) == [True, True, True, True, False]
    banned = torch.tensor([True, False, False, False, False])
    assert keep(SamplerConfig(top_k=1, top_p=1, epsilon=0, repetition_penalty=1), banned) == [
        False,
        True,
        False,
        False,
        False,
    ]
    assert sample(logits, SamplerConfig(temperature=0)).tolist() == [0]


def test_forked_candidates_equal_separate_runs(model):
    prompt = torch.randint(0, 663, (30,), generator=torch.Generator().manual_seed(1)).tolist()
    engine = Generator(model)
    greedy = SamplerConfig(temperature=0, repetition_penalty=1)
    together = engine.generate(prompt, [Constraint() for _ in range(3)], greedy, max_tokens=8)
    alone = Generator(model).generate(prompt, [Constraint()], greedy, max_tokens=8)
    assert all(g.ids == alone[0].ids for g in together) and len(alone[0].ids) == 8
    with torch.no_grad():  # the cached, continued state gives the logits of a fresh run
        full, _ = model(torch.tensor([prompt + alone[0].ids[:3]]))
    logits, _ = engine.prefill(prompt + alone[0].ids[:3])
    assert torch.allclose(logits, full[0, -1], atol=1e-4)


def test_bar_constraint_injects_headers_and_controls_and_stops(tok):
    tables = TokenTables.build(tok.codec)
    vocab = tok.codec.vocab
    bars = [((vocab.bar, vocab["TimeSig_3/4"]), (vocab["ACBarNoteDensity_2"],))] * 3
    c = BarInfillConstraint(tables, bars)
    assert (
        tables.banned[vocab["FillBar_End"]]
        and tables.banned[vocab["ACBarNoteDensity_2"]]
        and tables.banned[vocab["Track_End"]]
    )
    assert not tables.banned[vocab["Pitch_60"]] and not tables.banned[vocab.bar]
    assert c.after_sample(vocab["Pitch_60"]) == [vocab["Pitch_60"]]
    assert c.after_sample(vocab.bar) == [vocab.bar, vocab["TimeSig_3/4"], vocab["ACBarNoteDensity_2"]]  # bar 2 opens
    assert c.after_sample(vocab.bar)[0] == vocab.bar and not c.done  # bar 3
    assert c.after_sample(vocab.bar) == [vocab["FillBar_End"]] and c.done  # three bars written


def test_a_full_bar_can_only_be_followed_by_a_bar_start(tok):
    vocab = tok.codec.vocab
    real = TokenTables.build(tok.codec)
    assert real.notes[vocab["Pitch_60"]] == 1 and real.notes[vocab.bar] == 0 and real.notes[vocab["Position_0"]] == 0
    # tokens: a bar start, a position, a pitch (its note still open), a three-note (BPE) token ending in a duration,
    # a special token, and a velocity-and-duration token that finishes a note
    t, f = True, False
    tables = TokenTables(starts_bar=torch.tensor([t, f, f, f, f, f]), banned=torch.tensor([f, f, f, f, t, f]),
                         fill_end=4, track_end=4, notes=torch.tensor([0, 0, 1, 3, 0, 0]),
                         note_tail=torch.tensor([f, f, f, f, f, t]), leaves_open=torch.tensor([f, f, t, f, f, f]),
                         closes=torch.tensor([f, f, f, f, f, t]), finishes=torch.tensor([0, 0, 0, 3, 0, 0]))
    allowed = lambda c: (~c.banned()).nonzero()[:, 0].tolist()  # noqa: E731
    c = BarInfillConstraint(tables, [((0,), ())] * 2, max_notes=4)
    assert allowed(c) == [0, 1, 2, 3, 5]
    c.after_sample(2), c.after_sample(5), c.after_sample(2)
    assert allowed(c) == [0, 1, 2, 5]  # two notes of room: the three-note token would overfill the bar
    c.after_sample(5), c.after_sample(2), c.after_sample(5), c.after_sample(2)
    assert allowed(c) == [0, 5]  # full, its last note open: it may be finished, then a bar must start
    c.after_sample(5)
    assert allowed(c) == [0]
    c.after_sample(0)
    assert allowed(c) == [0, 1, 2, 3, 5] and c.notes == 0  # the next bar starts empty
    assert allowed(BarInfillConstraint(tables, [((0,), ())])) == [0, 1, 2, 3, 5]  # no limit by default
    per_bar = BarInfillConstraint(tables, [((0,), ())] * 2, max_notes=[1, None])  # one limit per bar
    per_bar.after_sample(2), per_bar.after_sample(5)
    assert allowed(per_bar) == [0]
    per_bar.after_sample(0)
    assert allowed(per_bar) == [0, 1, 2, 3, 5]  # the second bar has none
    rests = BarInfillConstraint(tables, [((0,), ())] * 3, max_rest=1)  # at most one bar without a note
    assert allowed(rests) == [0, 1, 2, 3, 5]
    rests.after_sample(0)  # bar 1 rested
    assert allowed(rests) == [1, 2, 3, 5]  # bar 2 cannot end before it has a note
    rests.after_sample(2)
    assert allowed(rests) == [1, 2, 3, 5]  # nor on a note still without its duration
    rests.after_sample(2)
    assert allowed(rests) == [1, 2, 3, 5]  # nor on two pitches without one: they decode to nothing
    rests.after_sample(5)
    assert allowed(rests) == [0, 1, 2, 3, 5]
    rests.after_sample(0)
    assert rests.rest == 0
    with pytest.raises(ValueError, match="3 note limits for 2 bars"):
        BarInfillConstraint(tables, [((0,), ())] * 2, max_notes=[1, 2, 3])
    real = TokenTables.build(tok.codec)
    assert real.leaves_open[vocab["Pitch_60"]] and real.closes[vocab["Duration_0.4.12"]]
    assert real.note_tail[vocab["Velocity_15"]] and not real.note_tail[vocab["Pitch_60"]]


def test_infill_changes_only_the_span_and_reports_controls(tok, model):
    infiller = Infiller(Generator(model), tok, structure="off")
    piece = tok.prepare(CHORALE)
    request = ControlRequest(density=[3], polyphony=(1, 1))
    candidates = infiller.infill(piece, 1, (3, 5), request, n=3, max_tokens=300, seed=0)
    assert len(candidates) == 3
    start, end = piece.bars[3].start, piece.bars[4].end
    for c in candidates:
        assert [r.density for r in c.requested] == [3, 3] and c.requested[0].polyphony == (1, 1)
        assert len(c.realised) == 2
        assert c.control_error == sum(abs(a.density - b.density) for a, b in zip(c.requested, c.realised)) + sum(
            abs(a.polyphony[0] - b.polyphony[0]) + abs(a.polyphony[1] - b.polyphony[1])
            if a.polyphony and b.polyphony
            else int(bool(a.polyphony) != bool(b.polyphony))
            for a, b in zip(c.requested, c.realised)
        ) + sum(
            x != y
            for a, b in zip(c.requested, c.realised)
            if a.durations and b.durations
            for x, y in zip(a.durations, b.durations)
        )
        for i, (a, b) in enumerate(zip(piece.original.tracks, c.score.tracks)):
            assert note_tuples(a, None, start) == note_tuples(b, None, start) and note_tuples(a, end) == note_tuples(
                b, end
            )
            if i != 1:
                assert note_tuples(a) == note_tuples(b)
        # inside the span: only what was generated (none of the original alto notes left behind)
        assert len(note_tuples(c.score.tracks[1], start, end)) == c.report.notes_added


def test_control_error_counts_every_missed_control():
    quarter, eighth = (False, False, True, False, False), (False, False, False, True, False)
    requested = [BarControls(4, (1, 2), quarter), BarControls(3, (1, 1), quarter), BarControls(2, (1, 1), eighth)]
    realised = [
        BarControls(4, (1, 2), quarter),  # all honoured: 0
        BarControls(6, (2, 3), eighth),  # density 3, polyphony 1 + 2, two flags: 8
        BarControls(0, None, (False,) * 5),
    ]  # density 2, no polyphony where one was asked: 1, one flag: 1 -> 4
    candidate = Candidate(None, None, requested, realised, None)
    assert candidate.control_error == 12


def test_infill_command_writes_candidates(tmp_path, model, tok, capsys):
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    argv = [
        "infill",
        str(CHORALE),
        "--track",
        "2",
        "--bars",
        "2:3,6:6",
        "-n",
        "2",
        "--seed",
        "1",
        "--model",
        str(path),
        "--density",
        "4",
        "--duration",
        "quarter",
        "--rank",
        "--max-tokens",
        "300",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "bach_bwv66.6_track2_bars2-3,6-6_1.mid",
        "bach_bwv66.6_track2_bars2-3,6-6_2.mid",
    ]
    printed = capsys.readouterr().out
    assert "requested [density 4 poly" in printed and "realised" in printed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bars", "40:42"], "outside the piece"),
        (["--bars", "2:3", "--density", "1,2,3"], "3 values for 2 bars"),
        (["--bars", "2:3", "--polyphony", "0-9"], "1 <= MIN <= MAX <= 6"),
        (["--bars", "2:3", "--duration", "breve"], "unknown value"),
        (["--bars", "2:3", "--track", "9"], "track 9 does not exist"),
    ],
    ids=["bars", "density", "polyphony", "duration", "track"],
)
def test_infill_errors_are_one_line(tmp_path, model, tok, capsys, extra, message):
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    argv = ["infill", str(CHORALE), "--track", "1", "--model", str(path), "-o", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_drum_tracks_refuse_pitch_controls(tmp_path, model, tok, band, capsys):
    band.dump_midi(tmp_path / "band.mid")
    drums = [t.is_drum for t in Score(str(tmp_path / "band.mid")).tracks].index(True)  # the empty track is not written
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    argv = [
        "infill",
        str(tmp_path / "band.mid"),
        "--track",
        str(drums),
        "--bars",
        "1:2",
        "--polyphony",
        "1-2",
        "--model",
        str(path),
    ]
    assert main(argv) == 2 and "drum track" in capsys.readouterr().err
    candidates = Infiller(Generator(model), tok, structure="off").infill(
        tok.prepare(band), 2, (0, 2), ControlRequest(density=[5]), n=1, max_tokens=200
    )
    assert candidates[0].requested == [BarControls(5), BarControls(5)]


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["infill", str(CHORALE), "--track", "0", "--bars", "1:2", "--model", str(tmp_path / "none.pth")]) == 2
    assert "no model at" in capsys.readouterr().err


class BarsAtOnce:
    """The tiny model as an engine, with a bar-starting token made certain: every bar ends at once.

    (A random model may go hundreds of tokens without a bar, and controls are injected only at bars.)
    """

    name = "test"

    def __init__(self, model, bar_id: int):
        self.inner, self.config, self.bar_id = TorchEngine(model), model.config, bar_id

    def boost(self, logits):
        logits = logits.clone()
        logits[..., self.bar_id] = 1e4
        return logits

    def prefill(self, tokens, state):
        logits, state = self.inner.prefill(tokens, state)
        return self.boost(logits), state

    def fork(self, state, k):
        streams, boost = self.inner.fork(state, k), self.boost

        class Streams:
            def step(self, tokens):
                return boost(streams.step(tokens))

        return Streams()


def test_free_infill_sends_no_controls_but_reports_the_originals(tok, model):
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(model, bar_id)), tok, structure="off")
    piece = tok.prepare(CHORALE)
    free = infiller.infill(piece, 1, (3, 5), n=1, max_tokens=300, seed=0, free=True)[0]
    guided = infiller.infill(piece, 1, (3, 5), n=1, max_tokens=300, seed=0)[0]
    assert free.requested == guided.requested  # the original bars' controls, for measuring adherence
    control_ids = tok.codec.vocab.control_ids
    assert not any(t in control_ids for t in free.generation.ids)
    assert any(t in control_ids for t in guided.generation.ids)
    with pytest.raises(ControlError):
        infiller.infill(piece, 1, (3, 5), ControlRequest(density=[3]), n=1, free=True)


@pytest.mark.parametrize("bars", [(3, 4), (3, 6)], ids=["1-bar", "3-bars"])
def test_the_engine_stops_after_exactly_the_requested_bars(tok, model, bars):
    """With bars ending as soon as they start, every candidate writes N bar headers, then FillBar_End, and is done."""
    tables = TokenTables.build(tok.codec)
    bar_id = int(tables.starts_bar.nonzero()[0])
    piece = tok.prepare(CHORALE)
    candidates = Infiller(Generator(BarsAtOnce(model, bar_id)), tok, structure="off").infill(
        piece, 1, bars, n=2, max_tokens=300, seed=0)
    n = bars[1] - bars[0]
    for c in candidates:
        ids = c.generation.ids
        assert c.generation.stopped == "done" and ids[-1] == tables.fill_end and ids.count(tables.fill_end) == 1
        assert sum(bool(tables.starts_bar[t]) for t in ids) == n - 1  # the first bar is opened by the prompt
        assert c.generation.sampled == n and len(c.realised) == n


def test_free_flag_refuses_controls(tmp_path, model, tok, capsys):
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    argv = ["infill", str(CHORALE), "--track", "1", "--bars", "2:3", "--free", "--density", "3", "--model", str(path)]
    assert main(argv) == 2 and "free infilling takes no" in capsys.readouterr().err


def test_generation_scores_what_it_sampled_with_the_model_s_own_log_probabilities(model):
    prompt = torch.randint(0, 663, (20,), generator=torch.Generator().manual_seed(5)).tolist()
    (g,) = Generator(model).generate(prompt, [Constraint()], SamplerConfig(top_k=50), max_tokens=12, seed=2)
    with torch.no_grad():  # a second pass, teacher-forced, gives the same sum
        logits, _ = model(torch.tensor([prompt + g.ids]))
    logp = torch.log_softmax(logits[0, len(prompt) - 1 : -1].float(), -1)
    expected = sum(logp[i, t].item() for i, t in enumerate(g.ids))
    assert g.sampled == 12 and g.logprob == pytest.approx(expected, abs=1e-3)
    assert g.mean_logprob == pytest.approx(expected / 12, abs=1e-4)


def test_rank_orders_by_control_error_or_by_likelihood():
    from midi_rwkv.inference.generator import Generation
    from midi_rwkv.inference.infiller import rank

    def candidate(error, logprob):
        return Candidate(
            None, None, [BarControls(4)], [BarControls(4 + error)], Generation(sampled=10, logprob=logprob)
        )

    a, b, c = candidate(3, -5.0), candidate(0, -20.0), candidate(1, -1.0)
    assert rank([a, b, c], "controls") == [b, c, a]
    assert rank([a, b, c], "likelihood") == [c, a, b]
    with pytest.raises(Exception, match="unknown ranking"):
        rank([a], "loudness")


def test_a_kept_register_bans_every_token_that_plays_outside_it(tok):
    tables = TokenTables.build(tok.codec)
    vocab = tok.codec.vocab
    assert tables.pitch_low[vocab["Pitch_60"]] == 60 and tables.pitch_high[vocab["Pitch_60"]] == 60
    assert tables.pitch_low[vocab["Position_4"]] == 128 and tables.pitch_high[vocab["Position_4"]] == -1
    outside = tables.outside(55, 70)
    assert outside[vocab["Pitch_54"]] and outside[vocab["Pitch_71"]] and not outside[vocab["Pitch_70"]]
    assert outside[vocab["PitchDrum_36"]] and not outside[vocab["Position_4"]]  # no drum hits; timing stays free
    c = BarInfillConstraint(tables, [((vocab.bar,), ())], register=(55, 70))
    assert c.banned()[vocab["Pitch_80"]] and not c.banned()[vocab["Pitch_60"]]


def test_infill_keeps_the_register_the_track_plays_around_the_span(tok, model):
    from midi_rwkv.inference.infiller import track_register

    score = Score(str(CHORALE))
    first = tok.prepare(score)
    start, end = first.bars[3].start, first.bars[4].end
    for n in score.tracks[1].notes:
        if start <= n.time < end:
            n.pitch += 24  # inside bars 4-5 the alto leaves its register: the span's own notes must not count
    piece = tok.prepare(score)
    low, high = track_register(piece, 1, (3, 5))  # the alto outside bars 4-5, widened by 1
    alto = [n.pitch for n in piece.original.tracks[1].notes if not start <= n.time < end]
    assert (low, high) == (min(alto) - 1, max(alto) + 1)
    assert track_register(piece, 1)[1] > high + 12  # with the span's notes, the range would reach far above
    # the default register; notes enough to test
    kept = Infiller(Generator(model), tok, structure="off", strict_density=False)
    free = Infiller(Generator(model), tok, structure="off", keep_register=False, strict_density=False)
    written = {name: [n.pitch for c in infiller.infill(piece, 1, (3, 5), n=4, sampler=VARIED, max_tokens=300, seed=1)
                      for n in c.score.tracks[1].notes if start <= n.time < end]
               for name, infiller in (("kept", kept), ("free", free))}
    assert written["kept"] and all(low <= p <= high for p in written["kept"])
    assert any(not low <= p <= high for p in written["free"])  # the random model strays without it


def test_strict_density_holds_each_bar_to_its_density_control(tok, model):
    from midi_rwkv.inference.infiller import density_limits

    assert density_limits([BarControls(3), BarControls(0), BarControls(18)], guard=40) == [3, 0, 40]  # 18 is "18+"
    piece = tok.prepare(CHORALE)
    strict = Infiller(Generator(model), tok, structure="off", keep_register=False)  # strict density is the default
    free = Infiller(Generator(model), tok, structure="off", keep_register=False, strict_density=False)
    request = ControlRequest(density=[2, 0])
    got = {name: [c.realised for c in infiller.infill(piece, 1, (3, 5), request, 4, VARIED, max_tokens=300, seed=2)]
           for name, infiller in (("strict", strict), ("free", free))}
    assert all(r[0].density <= 2 and r[1].density == 0 for r in got["strict"])
    assert any(r[0].density > 2 or r[1].density > 0 for r in got["free"])  # the random model overshoots without it
    asked = [BarControls(2), BarControls(0)]
    assert strict.note_limits(piece, asked, free=False) == [2, 0]
    assert strict.note_limits(piece, asked, free=True) == free.note_limits(piece, asked, free=False)  # no controls
