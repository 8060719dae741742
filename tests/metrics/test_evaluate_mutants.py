"""Small tests of the evaluation pipeline's parts (issue 34: the surviving mutants of ``metrics/evaluate.py``).

No model: an evaluation of the reference rows alone needs only a tokenizer file, and each test calls the one method
that shows the behaviour on a small piece built in code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.metrics import evaluate as evaluate_module
from midi_rwkv.metrics.evaluate import EvalConfig, Evaluation
from midi_rwkv.metrics.prompts import Prompt
from midi_rwkv.metrics.systems import parse_system
from midi_rwkv.structure import SongStructure
from midi_rwkv.tokenizer import BarControls
from midi_rwkv.tokenizer.controls import TrackControls
from tests.conftest import TPQ, make_score
from tests.structure.test_structure import song


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    tok.save(path)
    return path


def _evaluation(tmp_path, tokenizer_file, **settings) -> Evaluation:
    """An evaluation of the reference rows alone (no model system): only its tokenizer is loaded."""
    config = EvalConfig(out=str(tmp_path / "report"), system=[], tokenizer=str(tokenizer_file), **settings)
    return Evaluation(config, progress=False)


def _prompt(track: int, start: int, end: int) -> Prompt:
    return Prompt("p0", "folder:none", "piece", track, start, end)


# ---- _same_system -------------------------------------------------------------------------------------------------


SAMPLER = {"temperature": 1.0, "top_p": 0.95}


def test_a_stored_key_the_current_identity_lacks_is_not_compared(tmp_path, tokenizer_file):
    ev = _evaluation(tmp_path, tokenizer_file)
    ev._same_system("m", {"retired_setting": 3, "n": 1}, {"n": 1})  # an older record's key: no KeyError, no refusal
    with pytest.raises(MidiRwkvError, match="system 'm' was generated with n 1, and is now 2"):
        ev._same_system("m", {"retired_setting": 3, "n": 1}, {"n": 2})  # the keys after it are still compared


def test_an_unresolved_stored_sampler_is_not_compared_but_the_keys_after_it_are(tmp_path, tokenizer_file):
    ev = _evaluation(tmp_path, tokenizer_file)
    ev._same_system("m", {"sampler": None, "n": 1}, {"sampler": SAMPLER, "n": 1})
    with pytest.raises(MidiRwkvError, match="system 'm' was generated with n 1, and is now 2"):
        ev._same_system("m", {"sampler": None, "n": 1}, {"sampler": SAMPLER, "n": 2})
    with pytest.raises(MidiRwkvError, match="was generated with sampler"):  # a stored sampler is compared
        ev._same_system("m", {"sampler": SAMPLER}, {"sampler": SAMPLER | {"temperature": 0.5}})
    with pytest.raises(MidiRwkvError, match="was generated with lora None"):  # only the sampler's None is spared
        ev._same_system("m", {"lora": None}, {"lora": "a.pth"})


def test_file_hashes_are_compared_only_for_the_files_both_records_name(tmp_path, tokenizer_file):
    ev = _evaluation(tmp_path, tokenizer_file)
    ev._same_system("m", {"sha256": {"model": "aaa"}}, {"sha256": {"model": "aaa", "tokenizer": "bbb"}})
    ev._same_system("m", {"sha256": {"model": "aaa", "state": "ccc"}}, {"sha256": {"model": "aaa"}})
    with pytest.raises(MidiRwkvError, match="was generated with sha256"):
        ev._same_system("m", {"sha256": {"model": "aaa", "state": "ccc"}}, {"sha256": {"model": "ddd"}})


def test_a_changed_system_is_refused_with_what_to_do(tmp_path, tokenizer_file):
    ev = _evaluation(tmp_path, tokenizer_file)
    with pytest.raises(MidiRwkvError) as refused:
        ev._same_system("m", {"n": 1}, {"n": 2})
    assert str(refused.value) == (
        f"{ev.out}: system 'm' was generated with n 1, and is now 2: give it another name, or another --out"
    )


# ---- _reference in track mode ---------------------------------------------------------------------------------------


def _two_tracks():
    """4/4, 4 bars: a quarter-note melody (track 0) and a whole-note bass (track 1)."""
    bar = 4 * TPQ
    melody = [(b * bar + k * TPQ, TPQ, 60 + k, 80) for b in range(4) for k in range(4)]
    bass = [(b * bar, bar, 40, 70) for b in range(4)]
    return make_score([(0, 4, 4)], [(0, False, melody), (32, False, bass)])


def test_a_track_mode_reference_records_track_controls_and_silence_reads_as_no_notes(tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file, mode="track")
    piece = tok.prepare(_two_tracks(), "two")
    prompt = _prompt(0, 0, piece.num_bars)
    record = ev._reference("silence", piece, prompt, (0, piece.num_bars))
    expected = tok.track_controls_of(piece, piece.name, 0)
    assert isinstance(expected, TrackControls) and expected.density[1] > 0
    assert record["requested"] == [asdict(expected)]  # one set of track controls, not one per bar
    assert record["realised"] == [asdict(TrackControls((0, 0), 0.0))]  # the emptied track: no notes, no repetition
    assert not record["score"].tracks[0].notes and record["stopped"] == "done"


def _drum_fill():
    """4/4, 4 bars: a quarter-note melody (track 0) and drums (track 1) that play only in bars 1-2."""
    bar = 4 * TPQ
    melody = [(b * bar + k * TPQ, TPQ, 60 + k, 80) for b in range(4) for k in range(4)]
    drums = [(b * bar + k * TPQ // 2, TPQ // 4, 36 if k % 2 == 0 else 38, 100) for b in (1, 2) for k in range(8)]
    return make_score([(0, 4, 4)], [(0, False, melody), (0, True, drums)])


def test_a_reference_row_records_its_bar_controls_and_no_generation_cost(tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file)
    piece = tok.prepare(_drum_fill(), "drums")
    record = ev._reference("silence", piece, _prompt(1, 1, 3), (1, 3))  # silence empties the whole drum track
    requested = tok.requested_controls(piece, 1, (1, 3))
    assert len(requested) == 2 and all(c.density > 0 for c in requested)
    assert not record.pop("score").tracks[1].notes
    assert record == {
        "requested": [asdict(c) for c in requested],
        "realised": [asdict(BarControls(0))] * 2,  # one empty drum bar per bar asked for: a density, nothing else
        "seconds": 0.0,
        "tokens": 0,
        "stopped": "done",
        "notes_added": 0,
    }


# ---- _form ----------------------------------------------------------------------------------------------------------


def _abab(tok):
    """ABAB in 4-bar sections with a melody that follows the form: bars 8-11 repeat bars 0-3 exactly."""
    return tok.prepare(song("ABAB", melody_repeats=True), "abab")


def test_the_form_of_a_repeated_span_is_its_best_source_s_match(tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file)
    piece = _abab(tok)
    prompt = _prompt(0, 8, 12)
    best = SongStructure.of_piece(piece).sources(0, (8, 12), k=None)[0]
    assert best.match == pytest.approx(1.0)
    assert ev._form(piece, prompt) == {"source_match": best.match, "has_repeat": 1.0}


def test_a_span_with_no_source_window_has_no_repeat(tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file)
    bar = 4 * TPQ
    solo = tok.prepare(make_score([(0, 4, 4)], [(0, False, [(b * bar, TPQ, 60 + b, 80) for b in range(4)])]), "solo")
    assert SongStructure.of_piece(solo).sources(0, (0, 2)) == []  # one track: nothing to match on
    assert ev._form(solo, _prompt(0, 0, 2)) == {"source_match": 0.0, "has_repeat": 0.0}


def test_a_match_equal_to_the_threshold_counts_as_a_repeat(tmp_path, tokenizer_file, tok, monkeypatch):
    ev = _evaluation(tmp_path, tokenizer_file)
    piece = _abab(tok)
    match = ev._form(piece, _prompt(0, 8, 12))["source_match"]
    monkeypatch.setattr(evaluate_module, "REPEAT_THRESHOLD", match)  # as structure.has_repeat: at least the threshold
    assert ev._form(piece, _prompt(0, 8, 12))["has_repeat"] == 1.0
    monkeypatch.setattr(evaluate_module, "REPEAT_THRESHOLD", match + 1e-9)
    assert ev._form(piece, _prompt(0, 8, 12))["has_repeat"] == 0.0


# ---- the controls a record stores -----------------------------------------------------------------------------------


def test_stored_controls_read_back_as_they_were_written():
    from midi_rwkv.metrics.evaluate import _controls_from_json, _controls_to_json

    durations = (True, False, True, False, True)
    bars = [
        BarControls(5, (1, 3), durations),
        BarControls(0, None, (False,) * len(durations)),  # an empty bar: no polyphony, durations all off
        BarControls(7),  # a drum bar: a density alone
    ]
    tracks = [TrackControls((2, 6), 0.5, (1, 2), durations), TrackControls((0, 0), 0.0)]
    for controls in (bars, tracks):
        stored = json.loads(json.dumps(_controls_to_json(controls)))  # as the record's JSON holds them: lists
        assert _controls_from_json(stored) == controls


# ---- progress --------------------------------------------------------------------------------------------------------


def test_measuring_shows_its_progress_only_when_asked(tmp_path, tokenizer_file, capsys):
    config = EvalConfig(out=str(tmp_path / "report"), system=[], tokenizer=str(tokenizer_file))
    assert Evaluation(config, progress=True).measure([]) == []
    shown = capsys.readouterr().err
    assert "measuring: " in shown and "prompt/s" in shown  # tqdm's bar, labelled and counted in prompts
    assert Evaluation(config, progress=False).measure([]) == []
    assert capsys.readouterr().err == ""


# ---- measure ---------------------------------------------------------------------------------------------------------


def _measured(tmp_path, tokenizer_file, tok, **settings):
    """The rows measure() writes for the reference systems on ABAB's melody, bars 8-11 (a repeat of bars 0-3)."""
    ev = _evaluation(tmp_path, tokenizer_file, **settings)
    prompt = _prompt(0, 8, 12)
    ev._pieces[prompt.id] = _abab(tok)  # the piece as the corpus would give it
    ev.generate([prompt])
    rows = ev.measure([prompt])
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        assert row["prompt"] == prompt.id
        out.setdefault(row["system"], {})[row["metric"]] = row["value"]
    return out


def test_measure_writes_the_form_copy_rate_and_bar_controls_of_each_bar_infill(tmp_path, tokenizer_file, tok):
    rows = _measured(tmp_path, tokenizer_file, tok)
    original, silence = rows["original"], rows["silence"]
    assert original["source_match"] == pytest.approx(1.0) and original["has_repeat"] == 1.0
    assert silence["source_match"] == original["source_match"]  # the span's form: the same for every system
    assert original["copy_rate"] == 1.0  # the original bars repeat bars 0-3 note for note
    assert original["content_preservation"] == pytest.approx(1.0) and original["density_error"] == 0
    assert [original[f"density_delta_bar_{i}"] for i in range(4)] == [0, 0, 0, 0]
    assert all(silence[f"density_delta_bar_{i}"] < 0 for i in range(4))  # every bar asked for notes, got none
    assert original["seconds"] == 0.0 and "control_error" not in original


def test_measure_writes_one_control_error_and_no_form_for_a_whole_track(tmp_path, tokenizer_file, tok):
    rows = _measured(tmp_path, tokenizer_file, tok, mode="track")
    original, silence = rows["original"], rows["silence"]
    assert original["control_error"] == 0 and silence["control_error"] > 0
    for kept_out in ("source_match", "has_repeat", "copy_rate", "density_delta_bar_0", "density_error"):
        assert kept_out not in original


def test_a_system_without_a_generation_is_passed_over_and_the_next_ones_measured(tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file)
    prompt = _prompt(0, 8, 12)
    ev._pieces[prompt.id] = _abab(tok)
    ev.generate([prompt])
    first = ev.systems[0]
    ev._paths(first, prompt)[1].unlink()  # its record gone, as when a run was stopped before writing it
    measured = {row["system"] for row in ev.measure([prompt])}
    assert first.name not in measured and measured == {s.name for s in ev.systems[1:]}


def test_faithful_metrics_are_the_original_release_s_definitions(tmp_path, tokenizer_file, tok):
    """--faithful reaches the music metrics: the emptied span is 'perfectly groove-consistent' (1) as the original
    release scores it, where ours calls it undefined (NaN)."""
    ours = _measured(tmp_path / "ours", tokenizer_file, tok)["silence"]
    faithful = _measured(tmp_path / "faithful", tokenizer_file, tok, faithful=True)["silence"]
    assert math.isnan(ours["groove_consistency"]) and faithful["groove_consistency"] == 1.0
    assert ours["content_preservation"] == faithful["content_preservation"] == 0.0  # silent in one only: 0 either way


# ---- the settings' checks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, message", [({"prompts": 0}, "--prompts must be 1 or more"),
                                              ({"bars": 0}, "--bars must be 1 or more"),
                                              ({"context": -1}, "--context must be 0 or more")])
def test_settings_out_of_range_are_refused_in_words(tmp_path, tokenizer_file, setting, message):
    with pytest.raises(MidiRwkvError) as refused:
        EvalConfig(out=str(tmp_path), system=[], tokenizer=str(tokenizer_file), **setting)
    assert str(refused.value) == message


# ---- the pieces and the requests ------------------------------------------------------------------------------------


def test_a_prompt_s_piece_is_named_by_its_corpus_id_and_read_once(tmp_path, tokenizer_file):
    folder = tmp_path / "songs"
    folder.mkdir()
    _two_tracks().dump_midi(str(folder / "two.mid"))
    ev = _evaluation(tmp_path, tokenizer_file)
    corpus = f"folder:{folder}"
    prompt = Prompt("p0", corpus, open_corpus(corpus).ids[0], 0, 1, 3)
    piece = ev.piece(prompt)
    assert piece.name == prompt.piece  # the name a skipped reference row's reason starts with
    assert piece.num_bars == 4 and ev.piece(prompt) is piece


class _RecordingInfiller:
    """Stands in for an Infiller: keeps the request it is given and writes nothing."""

    def __init__(self):
        self.requests = []

    def write(self, piece, request):
        self.requests.append(request)
        return ["candidate"]


@pytest.mark.parametrize("spec, n", [("m:n=3,rank=controls,temperature=0.5", 3), ("m:n=4,rank=none", 1)])
def test_a_model_system_s_request_carries_its_seed_its_candidates_and_its_sampling(tmp_path, tokenizer_file, tok,
                                                                                  spec, n):
    ev = _evaluation(tmp_path, tokenizer_file)
    system = parse_system(spec, "model.pth")
    piece = tok.prepare(_two_tracks(), "two")
    infiller = _RecordingInfiller()
    assert ev._model_candidate(infiller, system, piece, _prompt(1, 1, 3), seed=1234) == "candidate"
    (request,) = infiller.requests
    assert request.options.seed == 1234  # each prompt's own seed: generations differ per prompt, and repeat
    assert request.options.n == n == system.candidates  # with no ranking, one candidate: the one scored
    assert request.sampler == system.sampler and request.options.rank == system.options.rank
    assert [(f.track, f.bars) for f in request.fills] == [(1, (1, 3))]


# ---- the settings a report's prompts were chosen with ----------------------------------------------------------------


def test_prompt_settings_name_min_bars_and_mode_only_when_set_so_older_reports_still_resume(tmp_path, tokenizer_file):
    def settings(**changed):
        return EvalConfig(out=str(tmp_path), system=[], tokenizer=str(tokenizer_file), **changed).prompt_settings()

    base = {"data": "pop909:../shared/data/pop909", "prompts": 40, "bars": 4, "context": 16, "track": 0,
            "split": "test", "seed": 0}
    assert settings() == base  # what reports written before min_bars and mode existed hold
    assert settings(min_bars=24) == base | {"min_bars": 24}
    assert settings(mode="track") == base | {"mode": "track"}
    assert settings(track="random") == base | {"track": None}  # one track per piece, chosen with the prompts


# ---- choosing the prompts --------------------------------------------------------------------------------------------


class _Chooser:
    """Stands in for choose_prompts: records its arguments and returns ``prompts``."""

    def __init__(self, prompts):
        self.prompts, self.calls = prompts, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.prompts


def test_prompts_are_chosen_with_the_evaluation_s_settings_once(tmp_path, tokenizer_file, monkeypatch):
    chooser = _Chooser([Prompt("p0", "folder:songs", "piece", 1, 0, 2)])
    monkeypatch.setattr(evaluate_module, "choose_prompts", chooser)
    config = EvalConfig(out=str(tmp_path / "report"), system=[], tokenizer=str(tokenizer_file), data="folder:songs",
                        prompts=3, bars=2, context=5, track=1, split="all", seed=7, min_bars=9, mode="track")
    ev = Evaluation(config, progress=True)
    assert ev.prompts() == chooser.prompts
    (args, kwargs), = chooser.calls
    assert args == ("folder:songs", ev.tokenizer, 3, 2, 5, 1, "all", 7, True, 9) and kwargs == {"whole_track": True}
    assert Evaluation(config, progress=True).prompts() == chooser.prompts and len(chooser.calls) == 1  # read back
    random = EvalConfig(out=str(tmp_path / "random"), system=[], tokenizer=str(tokenizer_file), track="random")
    Evaluation(random, progress=False).prompts()
    args, kwargs = chooser.calls[-1]
    assert args[5] is None and args[8] is False and kwargs == {"whole_track": False}  # one track per piece, drawn


def test_prompts_of_other_settings_or_none_at_all_are_refused_in_words(tmp_path, tokenizer_file, monkeypatch):
    chooser = _Chooser([Prompt("p0", "folder:songs", "piece", 0, 0, 2)])
    monkeypatch.setattr(evaluate_module, "choose_prompts", chooser)
    _evaluation(tmp_path, tokenizer_file, bars=2).prompts()
    ev = _evaluation(tmp_path, tokenizer_file, bars=3)
    with pytest.raises(MidiRwkvError) as refused:
        ev.prompts()
    saved = _evaluation(tmp_path, tokenizer_file, bars=2).config.prompt_settings()
    assert str(refused.value) == (f"{ev.out} holds an evaluation with other prompt settings ({saved}); "
                                  "use another --out")
    chooser.prompts = []
    with pytest.raises(MidiRwkvError) as none:
        _evaluation(tmp_path / "empty", tokenizer_file, data="folder:songs", split="all", bars=2).prompts()
    assert str(none.value) == "folder:songs: no piece of the all split has 2 bars with notes to infill"


def test_a_model_system_s_tokenizer_is_its_own_file_or_the_one_beside_its_model(tmp_path):
    model = tmp_path / "run" / "model.pth"
    assert Evaluation._tokenizer_of(parse_system("m:tokenizer=t.json", str(model))) == Path("t.json")
    assert Evaluation._tokenizer_of(parse_system("m", str(model))) == tmp_path / "run" / "tokenizer.json"


# ---- generating ------------------------------------------------------------------------------------------------------


class _Infillers:
    """Stands in for Infiller: records the model each open is for and each request, and writes the span's bars as
    they were."""

    def __init__(self, score):
        self.score, self.opened, self.structures, self.requests = score, [], [], []

    def open(self, options, model, tokenizer, state, lora, layout):
        self.opened.append((model, tokenizer, state, lora, layout))
        return self

    def with_structure(self, structure, follow):
        self.structures.append((structure, follow))
        return self

    def write(self, piece, request):
        self.requests.append(request)
        generation = SimpleNamespace(seconds=0.123456, sampled=10, prompt_tokens=100, stopped="done")
        return [SimpleNamespace(score=self.score, requested=[], realised=[], generation=generation,
                                mean_logprob=-1.23456, report=SimpleNamespace(notes_added=3))]


@pytest.fixture
def models(tmp_path, tok, monkeypatch):
    """Two model files (their bytes only hashed), and the Infiller every model system then opens."""
    paths = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.pth"
        path.write_bytes(name.encode())
        paths.append(str(path))
    infillers = _Infillers(_abab(tok).original)
    monkeypatch.setattr(evaluate_module, "Infiller", infillers)
    return paths, infillers


def _generating(tmp_path, tokenizer_file, tok, systems, progress=False, **settings):
    """An evaluation of the model systems ``systems`` alone, and ABAB's melody, bars 8-11, to generate."""
    config = EvalConfig(out=str(tmp_path / "report"), system=systems, tokenizer=str(tokenizer_file),
                        no_references=True, **settings)
    ev = Evaluation(config, progress=progress)
    prompt = _prompt(0, 8, 12)
    ev._pieces[prompt.id] = _abab(tok)
    return ev, prompt


def test_each_model_is_opened_once_and_every_system_records_its_identity(tmp_path, tokenizer_file, tok, models):
    (one, two), infillers = models
    ev, prompt = _generating(tmp_path, tokenizer_file, tok, [f"a:model={one}", f"b:model={two}",
                                                             f"c:model={one},temperature=0.5"])
    ev.generate([prompt])
    assert [opened[0] for opened in infillers.opened] == [one, two]  # c runs on a's model, opened once
    for system in ev.systems:
        record = json.loads(ev._paths(system, prompt)[1].read_text())
        assert record == {"prompt": prompt.to_dict(), "system": system.identity("bars"), "requested": [],
                          "realised": [], "seconds": 0.123, "tokens": 10, "prompt_tokens": 100,
                          "mean_logprob": -1.2346, "stopped": "done", "notes_added": 3}
    assert json.loads(ev._paths(ev.systems[0], prompt)[1].read_text())["system"]["sampler"] == vars(SamplerConfig())


def test_a_system_opens_its_own_files_and_follows_the_form_its_way(tmp_path, tokenizer_file, tok, models):
    (one, _), infillers = models
    files = {}
    for kind in ("tokenizer", "state", "lora"):
        files[kind] = tmp_path / f"{kind}.file"
        files[kind].write_bytes(kind.encode())
    ev, prompt = _generating(tmp_path, tokenizer_file, tok, [
        f"a:model={one},tokenizer={files['tokenizer']},state={files['state']},lora={files['lora']},"
        "layout=target-last,structure=off,structure_weight=0.5"])
    ev.generate([prompt])
    system = ev.systems[0]
    assert infillers.opened == [(one, str(files["tokenizer"]), str(files["state"]), str(files["lora"]), "target-last")]
    assert infillers.structures == [("off", system.follow)] and system.follow.weight == 0.5


def test_each_prompt_is_sampled_with_its_own_seed(tmp_path, tokenizer_file, tok, models):
    (one, _), infillers = models
    ev, first = _generating(tmp_path, tokenizer_file, tok, [f"a:model={one}"], seed=2)
    second = Prompt("p1", "folder:none", "piece", 0, 4, 8)
    ev._pieces[second.id] = ev._pieces[first.id]
    ev.generate([first, second])
    assert [r.options.seed for r in infillers.requests] == [2 * 1_000_003, 2 * 1_000_003 + 1]


def test_generating_shows_its_progress_only_when_asked(tmp_path, tokenizer_file, tok, models, capsys):
    (one, _), _ = models
    ev, prompt = _generating(tmp_path / "shown", tokenizer_file, tok, [f"a:model={one}"], progress=True)
    ev.generate([prompt])
    shown = capsys.readouterr().err
    assert "generating a: " in shown and "prompt/s" in shown  # labelled with the system, counted in prompts
    ev, prompt = _generating(tmp_path / "quiet", tokenizer_file, tok, [f"a:model={one}"])
    ev.generate([prompt])
    assert capsys.readouterr().err == ""


def test_a_reference_that_cannot_be_made_is_recorded_as_skipped_and_the_next_prompts_still_made(
        tmp_path, tokenizer_file, tok):
    ev = _evaluation(tmp_path, tokenizer_file)
    piece = _abab(tok)
    whole, later = _prompt(0, 0, piece.num_bars), Prompt("p1", "folder:none", "piece", 0, 8, 12)
    ev._pieces[whole.id] = ev._pieces[later.id] = piece
    ev.generate([whole, later])
    copy = next(s for s in ev.systems if s.name == "copy")
    record = json.loads(ev._paths(copy, whole)[1].read_text())
    assert set(record) == {"prompt", "system", "skipped"}  # no bars next to the whole piece to copy
    assert record["prompt"] == whole.to_dict() and record["system"] == {"name": "copy"}
    assert "skipped" not in json.loads(ev._paths(copy, later)[1].read_text())


def test_a_system_with_nothing_left_to_generate_lets_the_next_ones_generate(tmp_path, tokenizer_file, tok, models):
    (one, two), infillers = models
    ev, prompt = _generating(tmp_path, tokenizer_file, tok, [f"a:model={one}", f"b:model={two}"])
    ev.generate([prompt])
    ev._paths(ev.systems[1], prompt)[1].unlink()  # b stopped before its record was written
    ev.generate([prompt])
    assert len(infillers.requests) == 3 and ev._paths(ev.systems[1], prompt)[1].is_file()


def test_a_record_older_than_system_identities_is_reused(tmp_path, tokenizer_file, tok, models):
    (one, _), infillers = models
    ev, prompt = _generating(tmp_path, tokenizer_file, tok, [f"a:model={one}"])
    meta = ev._paths(ev.systems[0], prompt)[1]
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"prompt": prompt.to_dict(), "requested": [], "realised": [], "seconds": 1.0}))
    ev.generate([prompt])
    assert infillers.requests == [] and "system" not in json.loads(meta.read_text())


# ---- opening an evaluation -------------------------------------------------------------------------------------------


def test_an_evaluation_shows_its_progress_unless_told_not_to(tmp_path, tokenizer_file, capsys):
    Evaluation(EvalConfig(out=str(tmp_path), system=[], tokenizer=str(tokenizer_file))).measure([])
    assert "measuring: " in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["model", "tokenizer", "state", "lora"])
def test_a_system_naming_a_missing_file_is_refused_in_words(tmp_path, tokenizer_file, kind):
    model = tmp_path / "model.pth"
    model.write_bytes(b"weights")
    missing = tmp_path / f"no-{kind}"
    config = EvalConfig(out=str(tmp_path / "report"), system=[f"a:model={model},{kind}={missing}"],
                        tokenizer=str(tokenizer_file))
    with pytest.raises(MidiRwkvError) as refused:
        Evaluation(config, progress=False)
    assert str(refused.value) == f"system 'a': no {kind} at {missing}"


def test_reference_rows_alone_need_a_tokenizer(tmp_path):
    with pytest.raises(MidiRwkvError) as refused:
        Evaluation(EvalConfig(out=str(tmp_path), system=[]), progress=False)
    assert str(refused.value) == "give at least one model system, or --tokenizer for reference rows alone"


# ---- the systems the settings make -----------------------------------------------------------------------------------


def _config(tmp_path, **settings) -> EvalConfig:
    return EvalConfig(out=str(tmp_path / "report"), **settings)


def test_systems_run_the_evaluation_s_model_or_the_shipped_one_unless_they_name_their_own(tmp_path, monkeypatch):
    shipped = []
    monkeypatch.setattr(evaluate_module, "resolve_model", lambda path: shipped.append(path) or Path("/shipped.pth"))
    assert [s.model for s in _config(tmp_path, system=["a", "b:model=/b.pth"]).systems] == ["/shipped.pth", "/b.pth"]
    assert shipped == [None]
    given = _config(tmp_path, system=["a", "b:model=/b.pth"], model="/given.pth")
    assert [s.model for s in given.systems] == ["/given.pth", "/b.pth"]
    assert [s.model for s in _config(tmp_path, system=["b:model=/b.pth"]).systems] == ["/b.pth"]
    assert shipped == [None]  # every system named a model, or --model did: the shipped one was never looked for


def test_context_and_max_tokens_are_every_system_s_unless_it_gives_its_own(tmp_path):
    config = _config(tmp_path, system=["a", "b:context=2,max_tokens=300"], model="/m.pth", context=5,
                     max_tokens=500)
    (a, b) = config.systems
    assert (a.options.context, a.options.max_tokens) == (5, 500)
    assert (b.options.context, b.options.max_tokens) == (2, 300)
    plain = _config(tmp_path, system=["a"], model="/m.pth", context=0).systems[0]  # no context at all is allowed
    assert plain.options.context == 0 and plain.options.max_tokens is None


@pytest.mark.parametrize("track", [-1, "melody"])
def test_a_track_that_is_neither_a_number_nor_random_is_refused(tmp_path, tokenizer_file, track):
    with pytest.raises(MidiRwkvError) as refused:
        _config(tmp_path, system=[], tokenizer=str(tokenizer_file), track=track)
    assert str(refused.value) == f"--track must be a track number or 'random', got {track!r}"


def test_two_systems_of_one_name_are_refused(tmp_path):
    with pytest.raises(MidiRwkvError) as refused:
        _config(tmp_path, system=["a", "a:temperature=0.5"], model="/m.pth")
    assert str(refused.value) == "system names must be unique: ['a', 'a']"
