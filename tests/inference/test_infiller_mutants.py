"""What the mutation run of ``inference/infiller.py`` showed the other tests let through (issue 34): how a request's
settings reach the fills, how models are opened, and how whole and new tracks are written.

The pieces are built in code; the model is the tiny random one, as an engine that writes one note per bar where a
test checks the notes (``OneNotePerBar``), or sampling where a test checks the sampling itself."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.constraints import TokenTables
from midi_rwkv.inference.generator import Generator
from midi_rwkv.inference.infiller import Infiller, rank
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.inference.requests import BarFill, ControlRequest, InfillRequest, NewTrack, TrackFill
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.model import save_checkpoint
from midi_rwkv.tokenizer.controls import typical_track_controls
from tests.conftest import TPQ, make_score
from tests.inference.test_fills import OneNotePerBar
from tests.inference.test_inference import BarsAtOnce
from tests.inference.test_structure_fill import _abab
from tests.inference.test_structure_fill import _span_notes as _span

BAR = 4 * TPQ
GREEDY = SamplerConfig(temperature=0, repetition_penalty=1)


def one_note(model, tok, **settings) -> Infiller:
    settings.setdefault("structure", "off")
    return Infiller(Generator(OneNotePerBar(model, tok.codec.vocab)), tok, **settings)


# ---- rank ------------------------------------------------------------------------------------------------------------

def test_an_unknown_ranking_names_every_ranking_there_is():
    with pytest.raises(MidiRwkvError) as err:
        rank([], "best")
    assert str(err.value) == "unknown ranking 'best': choose from none, controls, likelihood"


# ---- configured: the request's settings on the loaded model --------------------------------------------------------

def test_configured_is_the_infiller_itself_for_its_own_settings_else_a_copy_with_the_requests(tok, tiny_model):
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    assert infiller.configured(InfillOptions(structure="off")) is infiller
    other = infiller.configured(InfillOptions(register="free", strict_density=False, structure="vary"))
    assert other is not infiller and other.generator is infiller.generator
    assert (other.keep_register, other.strict_density, other.structure) == (False, False, "vary")
    assert (infiller.keep_register, infiller.strict_density, infiller.structure) == (True, True, "off")
    only_register = infiller.configured(InfillOptions(register="free", structure="off"))
    assert (only_register.keep_register, only_register.strict_density, only_register.structure) == (False, True, "off")


def test_a_request_s_register_setting_reaches_the_notes_written(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = one_note(tiny_model, tok)
    fills = (BarFill(0, (2, 4)),)
    (kept,) = infiller.write(piece, InfillRequest(fills, InfillOptions(n=1, seed=0, structure="off")))
    (free,) = infiller.write(piece, InfillRequest(fills, InfillOptions(n=1, seed=0, structure="off", register="free")))
    # the melody plays 67-71: kept, the engine's pitch nearest middle C is 66; free, middle C itself
    assert [n.pitch for n in kept.score.tracks[0].notes if 2 * BAR <= n.time < 4 * BAR] == [66, 66]
    assert (kept.report.bars_expected, kept.report.bars_generated, kept.report.notes_added) == (2, 2, 2)
    assert [n.pitch for n in free.score.tracks[0].notes if 2 * BAR <= n.time < 4 * BAR] == [60, 60]


# ---- write: every setting of the request reaches the fill ------------------------------------------------------------

def test_write_reads_the_context_the_request_asks_for(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")

    def prompt(**options):
        request = InfillRequest((BarFill(0, (4, 5)),), InfillOptions(n=1, seed=0, max_tokens=2, structure="off",
                                                                     **options))
        (c,) = infiller.write(piece, request)
        return c.generation.prompt_tokens

    def direct(**kwargs):
        (c,) = infiller.infill(piece, 0, (4, 5), n=1, seed=0, max_tokens=2, **kwargs)
        return c.generation.prompt_tokens

    narrow, whole = prompt(context=0), prompt(context="all")
    assert narrow == direct(context_bars=0) < whole == direct(context_bars=None)
    capped = prompt(context="all", context_tokens=200)
    assert capped == direct(context_bars=None, context_tokens=200) < whole


def test_write_samples_at_most_the_request_s_max_tokens(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    request = InfillRequest((BarFill(0, (2, 4)),), InfillOptions(n=2, seed=0, max_tokens=5, structure="off"))
    for c in infiller.write(piece, request):
        assert c.generation.stopped == "max_tokens" and c.generation.sampled == 5


def test_write_samples_with_the_request_s_sampler(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    options = InfillOptions(n=3, seed=0, max_tokens=25, structure="off")
    greedy = infiller.write(piece, InfillRequest((BarFill(0, (2, 4)),), options, GREEDY))
    assert len({tuple(c.generation.ids) for c in greedy}) == 1  # greedy: the three candidates are one
    sampled = infiller.write(piece, InfillRequest((BarFill(0, (2, 4)),), options))
    assert len({tuple(c.generation.ids) for c in sampled}) > 1


def test_write_samples_with_the_request_s_seed(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")

    def ids(seed):
        options = InfillOptions(n=2, seed=seed, max_tokens=25, structure="off")
        return [c.generation.ids for c in infiller.write(piece, InfillRequest((BarFill(0, (2, 4)),), options))]

    torch.manual_seed(1)
    first = ids(5)
    torch.manual_seed(2)  # the global generator moved: a request's seed alone decides its candidates
    assert ids(5) == first and ids(6) != first


def test_write_free_sends_no_controls(tok, tiny_model, quartet):
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(tiny_model, bar_id)), tok, structure="off")
    piece = tok.prepare(quartet)
    control_ids = tok.codec.vocab.control_ids

    def ids(free):
        options = InfillOptions(n=1, seed=0, max_tokens=50, structure="off", free=free)
        (c,) = infiller.write(piece, InfillRequest((BarFill(0, (2, 4)),), options))
        return c.generation.ids

    assert not any(t in control_ids for t in ids(True))
    assert any(t in control_ids for t in ids(False))


def test_write_makes_the_first_candidate_the_repeat_and_a_later_one_a_variation(tok, tiny_model):
    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    request = InfillRequest((BarFill(0, (8, 12)),), InfillOptions(n=1, seed=0, max_tokens=250))
    original = _span(piece.original, piece, 0, (8, 12))
    (first,) = infiller.write(piece, request)  # first_candidate 0 unless told
    assert original and _span(first.score, piece, 0, (8, 12)) == original
    (later,) = infiller.write(piece, request, first_candidate=1)  # the studio's second candidate, made alone
    assert _span(later.score, piece, 0, (8, 12)) != original


# ---- opening a model -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved(tiny_model, tok, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    path = save_checkpoint(tiny_model, folder / "m.pth")
    tok.save(folder / "m.tokenizer.json")
    tok.save(folder / "tokenizer.json")
    return path


def test_open_merges_the_lora_it_is_given_and_keeps_the_register_by_default(tiny_model, saved, tmp_path):
    from midi_rwkv.peft.adapters import LoRA, save_adapter

    lora = LoRA(tiny_model, rank=2, alpha=4)
    with torch.no_grad():
        for p in lora.B.values():
            p.normal_(0, 0.1)
    adapter = save_adapter(lora, tiny_model, tmp_path / "lora.safetensors")
    plain = Infiller.open(InfillOptions(engine="torch"), saved)
    tuned = Infiller.open(InfillOptions(engine="torch"), saved, lora=adapter)
    name = "blocks.1.ffn.value.weight"
    base = plain.generator.engine.model.state_dict()[name]
    assert torch.equal(base, tiny_model.state_dict()[name])
    assert not torch.allclose(tuned.generator.engine.model.state_dict()[name], base)
    assert plain.keep_register is True and plain.strict_density is True and plain.structure == "follow"
    loose = Infiller.open(InfillOptions(engine="torch", register="free", strict_density=False, structure="off"), saved)
    assert (loose.keep_register, loose.strict_density, loose.structure) == (False, False, "off")
    assert plain.layout == "file-order"  # the model's own (no sidecar says otherwise)
    assert Infiller.open(InfillOptions(engine="torch"), saved, layout="target-last").layout == "target-last"


def test_an_unknown_engine_is_refused_naming_every_engine(saved):
    with pytest.raises(MidiRwkvError) as err:
        Infiller.load(saved, engine="cuda")
    assert str(err.value) == "unknown engine 'cuda': choose from auto, torch, ggml, ggml-f32"


def test_a_model_is_opened_with_the_tokenizer_named_when_none_lies_beside_it(tiny_model, tok, tmp_path):
    path = save_checkpoint(tiny_model, tmp_path / "alone" / "m.pth")
    tok.save(tmp_path / "elsewhere.json")
    infiller = Infiller.load(path, tmp_path / "elsewhere.json", engine="torch")
    assert infiller.tokenizer.vocab_size == tok.vocab_size


def test_a_lora_passed_as_a_state_is_refused_in_words(tiny_model, saved, tmp_path):
    from midi_rwkv.peft.adapters import LoRA, save_adapter

    adapter = save_adapter(LoRA(tiny_model, rank=2, alpha=4), tiny_model, tmp_path / "lora.safetensors")
    with pytest.raises(MidiRwkvError) as err:
        Infiller.load(saved, state=adapter, engine="torch")
    assert str(err.value) == f"{adapter} is a lora adapter; pass it with --lora"


def test_a_tuned_state_starts_the_prompts_on_the_ggml_engine_too(tok, tmp_path, monkeypatch):
    from midi_rwkv.inference import ggml
    from midi_rwkv.peft.adapters import StateAdapter, save_adapter

    if not ggml.available():
        pytest.skip("llama-cpp-python not installed")
    from tests.inference.test_ggml import make_model

    monkeypatch.setattr(ggml, "gguf_cache", lambda: tmp_path / "cache")
    model = make_model()  # 64-wide heads, which llama.cpp runs
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    style = StateAdapter(model)
    with torch.no_grad():
        style.wkv.normal_(std=0.3, generator=torch.Generator().manual_seed(4))
    adapter = save_adapter(style, model, tmp_path / "style.safetensors")
    prompt = [5, 17, 300, 41]
    want, _ = Infiller.load(path, state=adapter, engine="torch").generator.prefill(prompt)
    got, _ = Infiller.load(path, state=adapter, engine="ggml-f32").generator.prefill(prompt)
    plain, _ = Infiller.load(path, engine="ggml-f32").generator.prefill(prompt)
    assert torch.allclose(got, want, atol=1e-3) and not torch.allclose(plain, want, atol=1e-2)


@pytest.fixture(scope="module")
def gguf_model(tok, tmp_path_factory):
    """A GGUF model (64-wide heads: llama.cpp's kernel refuses narrower ones) and its tokenizer."""
    from midi_rwkv.inference import ggml

    if not ggml.available():
        pytest.skip("llama-cpp-python not installed")
    from midi_rwkv.inference.ggml.gguf import export_gguf
    from tests.inference.test_ggml import make_model

    folder = tmp_path_factory.mktemp("gguf")
    tok.save(folder / "tokenizer.json")
    return export_gguf(make_model(), folder / "m.f32.gguf", "f32"), folder / "tokenizer.json"


@pytest.mark.parametrize("adapter", ["state", "lora"])
def test_a_gguf_model_refuses_a_state_or_a_lora_alone(gguf_model, adapter, tmp_path):
    path, tokenizer = gguf_model
    with pytest.raises(MidiRwkvError) as err:
        Infiller.load(path, tokenizer, **{adapter: tmp_path / "adapter.safetensors"}, engine="ggml")
    assert str(err.value) == "--state and --lora need the .pth model (they are checked against its weights)"


def test_a_gguf_model_runs_on_the_threads_and_with_the_settings_asked_for(gguf_model):
    path, tokenizer = gguf_model
    infiller = Infiller.load(path, tokenizer, threads=2)
    assert infiller.generator.engine.threads == 2 and "2 threads" in infiller.generator.engine.name
    plain = Infiller.load(path, tokenizer)  # one thread unless told, the register kept and the density strict
    assert plain.generator.engine.threads == 1 and plain.generator.engine.name.endswith("1 thread)")
    assert (plain.keep_register, plain.strict_density, plain.structure) == (True, True, "follow")
    loose = Infiller.load(path, tokenizer, keep_register=False, strict_density=False, structure="off")
    assert (loose.keep_register, loose.strict_density, loose.structure) == (False, False, "off")


def test_a_gguf_model_of_another_vocabulary_is_named_in_the_error(gguf_model, tmp_path):
    from midi_rwkv.inference.ggml.gguf import export_gguf
    from tests.inference.test_ggml import make_model

    _, tokenizer = gguf_model
    other = export_gguf(make_model(vocab=700), tmp_path / "other.gguf", "f32")
    with pytest.raises(MidiRwkvError) as err:
        Infiller.load(other, tokenizer)
    assert str(err.value) == f"{other}: the model has a vocabulary of 700 tokens but the tokenizer has 663"


# ---- add_track -------------------------------------------------------------------------------------------------------

def test_a_new_track_gets_four_candidates_unless_told(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    assert len(one_note(tiny_model, tok).add_track(piece, NewTrack(program=33), seed=0)) == 4


def test_a_new_drum_track_refuses_pitch_controls_naming_its_track_number(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    new = NewTrack(is_drum=True, controls=ControlRequest(polyphony=(1, 2)))
    with pytest.raises(ControlError) as err:
        one_note(tiny_model, tok).add_track(piece, new, n=1, seed=0)
    assert str(err.value).startswith("track 4 is a drum track")


@pytest.mark.parametrize("is_drum", [False, True], ids=["pitched", "drums"])
def test_a_new_track_s_controls_are_the_typical_ones_of_the_tracks_of_its_kind(tok, tiny_model, quartet, is_drum):
    piece = tok.prepare(quartet)
    same_kind = [1 - is_drum, 1 - is_drum, 1 - is_drum, is_drum]  # melody, chords, bass pitched; drums
    theirs = [tok.track_controls_of(piece, "", i) for i in range(4) if same_kind[i]]
    expected = typical_track_controls(theirs, is_drum)
    others = [tok.track_controls_of(piece, "", i) for i in range(4) if not same_kind[i]]
    assert expected != typical_track_controls([], is_drum) and expected != typical_track_controls(others, is_drum)
    (c,) = one_note(tiny_model, tok).add_track(piece, NewTrack(program=33, is_drum=is_drum), n=1, seed=0)
    assert c.requested == [expected]


@pytest.mark.parametrize(
    "new, name, program",
    [
        (NewTrack(program=33), "Program 33", 33),
        (NewTrack(program=33, name="Walking bass"), "Walking bass", 33),
        (NewTrack(is_drum=True), "Drums", 0),
        (NewTrack(is_drum=True, program=5, name="Kit"), "Kit", 0),
    ],
    ids=["program", "named", "drums", "named-drums-with-a-program"],
)
def test_a_new_track_is_named_and_programmed_as_asked(tok, tiny_model, quartet, new, name, program):
    piece = tok.prepare(quartet)
    (c,) = one_note(tiny_model, tok).add_track(piece, new, n=1, seed=0)
    added = c.score.tracks[4]
    assert (added.name, added.program, added.is_drum) == (name, program, new.is_drum)
    assert len(added.notes) == 8


def test_a_new_track_samples_at_most_max_tokens_and_repeats_with_its_seed(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    (short,) = one_note(tiny_model, tok).add_track(piece, NewTrack(program=33), n=1, seed=0, max_tokens=7)
    assert short.generation.stopped == "max_tokens" and len(short.generation.ids) == 7
    sampling = Infiller(Generator(tiny_model), tok, structure="off")
    runs = [sampling.add_track(piece, NewTrack(program=33), n=2, seed=5, max_tokens=40) for _ in range(2)]
    assert [c.generation.ids for c in runs[0]] == [c.generation.ids for c in runs[1]]


# ---- check_fills -----------------------------------------------------------------------------------------------------

def test_check_fills_lets_a_later_fill_name_the_track_a_new_track_adds(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok)
    infiller.check_fills(piece, [NewTrack(program=33), BarFill(4, (2, 4)), TrackFill(4)])  # track 4: the new one
    with pytest.raises(MidiRwkvError, match="outside the piece"):
        infiller.check_fills(piece, [BarFill(0, (7, 12))])


# ---- fill: several fills, and the defaults of the Python API -------------------------------------------------------

@pytest.fixture
def long_tune():
    """40 bars of 4/4, one quarter note a bar (a prompt of every bar stays under the default token limit)."""
    return make_score([(0, 4, 4)], [(0, False, [(b * BAR, TPQ, 60 + b % 7, 80) for b in range(40)])])


def test_fill_reads_16_bars_of_context_on_each_side_unless_told(tok, tiny_model, long_tune):
    piece = tok.prepare(long_tune)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")

    def prompt(c):
        return c.generation.prompt_tokens

    (default,) = infiller.fill(piece, [BarFill(0, (20, 21))], n=1, seed=0, max_tokens=2)
    sixteen, seventeen = (infiller.infill(piece, 0, (20, 21), n=1, seed=0, max_tokens=2, context_bars=k)[0]
                          for k in (16, 17))
    assert prompt(default) == prompt(sixteen) < prompt(seventeen)
    (infill_default,) = infiller.infill(piece, 0, (20, 21), n=1, seed=0, max_tokens=2)
    assert prompt(infill_default) == prompt(sixteen)


def test_fill_writes_four_candidates_with_controls_unless_told(tok, tiny_model, quartet):
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(tiny_model, bar_id)), tok, structure="off")
    piece = tok.prepare(quartet)
    results = infiller.fill(piece, [BarFill(0, (2, 4))], seed=0, max_tokens=50)
    assert len(results) == 4
    assert all(any(t in tok.codec.vocab.control_ids for t in c.generation.ids) for c in results)


def test_fill_makes_its_first_candidate_the_repeat_unless_told(tok, tiny_model):
    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    (first,) = infiller.fill(piece, [BarFill(0, (8, 12))], n=1, seed=0, max_tokens=250)
    assert _span(first.score, piece, 0, (8, 12)) == _span(piece.original, piece, 0, (8, 12))


def test_nothing_to_fill_is_refused_in_words(tok, tiny_model, quartet):
    with pytest.raises(MidiRwkvError) as err:
        Infiller(Generator(tiny_model), tok).fill(tok.prepare(quartet), [])
    assert str(err.value) == "nothing to fill"


def test_every_fill_of_a_request_samples_with_its_settings(tok, tiny_model, quartet):
    piece = tok.prepare(quartet, "quartet")
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    fills = [BarFill(0, (2, 4)), BarFill(1, (5, 6))]
    runs = [infiller.fill(piece, fills, n=2, seed=3, max_tokens=30) for _ in range(2)]
    for c in runs[0]:
        assert [len(s.generation.ids) for s in c.steps] == [30, 30]  # max_tokens reaches every fill
    # the seed reaches every fill: the same request writes the same candidates
    assert [[s.generation.ids for s in c.steps] for c in runs[0]] == [[s.generation.ids for s in c.steps]
                                                                       for c in runs[1]]
    greedy = infiller.fill(piece, fills, n=2, sampler=GREEDY, seed=3, max_tokens=30)
    assert greedy[0].steps[1].generation.ids == greedy[1].steps[1].generation.ids  # the sampler too


def test_a_later_fill_too_long_for_the_context_limit_names_the_piece(tok, tiny_model, quartet):
    piece = tok.prepare(quartet, "quartet")
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    with pytest.raises(MidiRwkvError) as err:
        infiller.fill(piece, [BarFill(0, (2, 3)), BarFill(3, (0, 8))], n=1, seed=0, max_tokens=5, context_tokens=200)
    assert str(err.value).startswith("quartet: bars 0:8 need")


def test_whole_and_new_track_fills_get_their_controls_and_settings(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = one_note(tiny_model, tok)
    (whole,) = infiller.fill(piece, [TrackFill(0, ControlRequest(density=[3, 6]))], n=1, seed=0, max_tokens=7)
    assert whole.requested[0].density == (3, 6) and len(whole.generation.ids) == 7
    (new,) = infiller.fill(piece, [NewTrack(program=33)], n=1, seed=0, max_tokens=7)
    assert len(new.generation.ids) == 7
    sampling = Infiller(Generator(tiny_model), tok, structure="off")
    for fill in (TrackFill(1), NewTrack(program=33)):
        greedy = sampling.fill(piece, [fill], n=2, sampler=GREEDY, seed=0, max_tokens=20)
        assert greedy[0].generation.ids == greedy[1].generation.ids  # the sampler reaches it
        again = [sampling.fill(piece, [fill], n=1, seed=4, max_tokens=20)[0].generation.ids for _ in range(2)]
        assert again[0] == again[1]  # and the seed


def test_something_that_is_not_a_fill_is_refused_naming_it(tok, tiny_model, quartet):
    with pytest.raises(TypeError) as err:
        Infiller(Generator(tiny_model), tok).fill(tok.prepare(quartet), ["bars 2-4"])
    assert str(err.value) == "not a fill: 'bars 2-4'"


def test_the_context_setting_widens_the_prompt_and_copies_nothing(tok, tiny_model):
    """Under ``context`` the model sees the repeated window but is not made to copy it: it samples what ``off`` would
    with that much context."""
    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="context")
    (shown,) = infiller.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=120)
    (plain,) = infiller.with_structure("off").infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=120)
    assert shown.generation.ids == plain.generation.ids
    assert shown.form and "bars 1-4 are a repeat" in shown.form and plain.form is None


# ---- whole tracks ----------------------------------------------------------------------------------------------------

def test_a_whole_track_gets_four_candidates_of_its_fill_measured_on_what_was_written(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    request = ControlRequest(density=[1, 2])
    results = one_note(tiny_model, tok).regenerate_track(piece, 0, request, seed=0)
    assert len(results) == 4
    for c in results:
        assert c.fill == TrackFill(0, request) and c.requested[0].density == (1, 2)
        assert c.realised == [tok.track_controls_of(c.score, "", 0)] and c.realised[0].density == (1, 1)


def test_a_whole_track_of_program_0_keeps_its_register_unless_told(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    (kept,) = one_note(tiny_model, tok).regenerate_track(piece, 0, n=1, seed=0)
    assert {n.pitch for n in kept.score.tracks[0].notes} == {66}  # the melody (program 0) plays 67-71
    (c,) = one_note(tiny_model, tok, keep_register=False).regenerate_track(piece, 0, n=1, seed=0)
    assert {n.pitch for n in c.score.tracks[0].notes} == {60}



def test_a_whole_track_follows_the_bars_where_the_other_tracks_repeat(tok, tiny_model):
    from midi_rwkv.inference.form import FollowSettings

    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok).with_structure("vary", FollowSettings(tracks=True, weight=0.7))
    earlier, weights = infiller.track_repeats(piece, 0, piece.num_bars)
    # bar 3 repeats bar 0 (the same chord); bars 1 and 2 resemble bar 0 too little (under the repeat threshold)
    assert earlier == [None, None, None, 0, None, None, 4, 5, 3, 1, 2, 8, 6, 7, 12, 13]
    assert weights == [0.0 if e is None else 0.7 for e in earlier]
    # the track itself is left out: with the melody counted, the second half repeats the first bar for bar
    assert infiller.track_repeats(piece, None, piece.num_bars)[0] == [None] * 8 + list(range(8))
    assert infiller.track_repeats(piece, 0, piece.num_bars - 1) == (None, [])  # the tokenizer's bars differ
    for structure in ("off", "context"):  # whole tracks follow only under follow and vary
        assert infiller.with_structure(structure).track_repeats(piece, 0, piece.num_bars) == (None, [])
    assert infiller.with_structure("vary", FollowSettings()).track_repeats(piece, 0, piece.num_bars) == (None, [])



def test_a_bar_matching_exactly_the_repeat_threshold_is_a_repeat(tok, tiny_model):
    from midi_rwkv.inference.form import FollowSettings

    tracks = [(0, False, [(b * BAR, TPQ, 72, 80) for b in range(2)])]  # track 0: the one written again
    tracks += [(0, False, [(b * BAR, BAR, 60, 80) for b in range(2)]) for _ in range(8)]  # bar 1 as bar 0
    tracks += [(0, False, [(BAR, TPQ, 65 + i, 80)]) for i in range(2)]  # only in bar 1: half a match each
    piece = tok.prepare(make_score([(0, 4, 4)], tracks))  # bar 1 matches bar 0 (8 + 2 x 0.5) / 10 = 0.9
    infiller = Infiller(Generator(tiny_model), tok).with_structure("follow", FollowSettings(tracks=True))
    assert infiller.track_repeats(piece, 0, 2) == ([None, 0], [0.0, 1.0])



def test_a_whole_track_written_again_follows_the_bars_the_other_tracks_repeat(tok, tiny_model):
    from midi_rwkv.inference.form import FollowSettings

    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok).with_structure("follow", FollowSettings(tracks=True))
    (c,) = infiller.regenerate_track(piece, 0, n=1, seed=0, max_tokens=3000)

    def bar(k):
        b = piece.bars[k]
        return sorted((n.time - b.start, n.pitch) for n in c.score.tracks[0].notes if b.start <= n.time < b.end)

    assert bar(4) and bar(2)
    # where the other tracks (the melody left out) repeat: bar 6 is bar 4 (the second B), 10 is 2 (the second A)
    assert [bar(6), bar(10)] == [bar(4), bar(2)]


def test_a_drum_track_refuses_pitch_controls_naming_its_number(tok, tiny_model, quartet):
    with pytest.raises(ControlError) as err:
        one_note(tiny_model, tok).regenerate_track(tok.prepare(quartet), 3, ControlRequest(polyphony=(1, 2)), n=1)
    assert str(err.value).startswith("track 3 is a drum track")



def test_a_whole_track_that_comes_out_empty_realises_no_notes(tok, tiny_model, quartet):
    from tests.inference.test_fills import bars_end_at_once

    piece = tok.prepare(quartet)
    piece.longest_rest = lambda track=None: 8  # no rest limit: every bar ends at once, so no notes
    (c,) = bars_end_at_once(tiny_model, tok).regenerate_track(piece, 2, n=1, seed=0)
    assert not c.score.tracks[2].notes
    assert c.realised == [replace(c.requested[0], density=(0, 0))] and c.requested[0].density != (0, 0)


def test_a_long_whole_track_gets_a_token_budget_for_every_bar(tok, tiny_model):
    """2000 tokens and 160 more per bar: 64 bars of 32 notes (the runaway guard) need more than 2000."""
    from tests.inference.test_fills import NotesForever

    score = make_score([(0, 4, 4)], [(0, False, [(b * BAR, TPQ, 67, 80) for b in range(64)])])
    piece = tok.prepare(score)
    pitch = tok.codec.vocab["Pitch_67"]
    infiller = Infiller(Generator(NotesForever(tiny_model, pitch)), tok, structure="off", keep_register=False)
    (c,) = infiller.regenerate_track(piece, 0, ControlRequest(density=[2, 18]), n=1, seed=0)
    assert c.generation.stopped == "done" and c.generation.ids.count(pitch) == 64 * 32 and len(c.generation.ids) > 2000
