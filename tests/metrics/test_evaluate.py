"""The evaluation pipeline end to end on fixtures, with a tiny random model."""

from __future__ import annotations

import csv
import math
import json
import shutil

import pytest
import torch
from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.cli import main
from midi_rwkv.metrics.music import content_preservation, groove_similarity
from midi_rwkv.metrics.region import Region
from midi_rwkv.metrics.systems import parse_system, reference_score
from midi_rwkv.model import RWKV7, init_weights, save_checkpoint, tiny_config
from midi_rwkv.tokenizer import InfillTokenizer
from tests.conftest import FIXTURES, TPQ, make_score, note_tuples

CHORALE = FIXTURES / "bach_bwv66.6.mid"


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tok):
    root = tmp_path_factory.mktemp("eval")
    data = root / "data"
    data.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(CHORALE, data / f"{name}.mid")
    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config(tok.vocab_size)), seed=0)
    path = save_checkpoint(model, root / "m.pth")
    tok.save(root / "tokenizer.json")
    return root, data, path


def _run(root, data, path, out, *extra):
    return main(
        [
            "evaluate",
            "--no-progress",
            "--out",
            str(out),
            "--data",
            f"folder:{data}",
            "--model",
            str(path),
            "--split",
            "all",
            "--prompts",
            "2",
            "--bars",
            "2",
            "--context",
            "2",
            "--track",
            "1",
            "--max-tokens",
            "200",
            *extra,
        ]
    )


def test_evaluation_writes_results_summary_and_plots_and_resumes(setup, capsys):
    root, data, path = setup
    out = root / "report"
    assert _run(root, data, path, out) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    systems = {r["system"] for r in rows}
    assert systems == {"model", "free", "original", "copy", "structure-copy", "silence"}
    assert len({r["prompt"] for r in rows}) == 2
    cp = {(r["system"], r["prompt"]): float(r["value"]) for r in rows if r["metric"] == "content_preservation"}
    assert all(v == pytest.approx(1.0) for (s, _), v in cp.items() if s == "original")  # the ceiling
    errors = [float(r["value"]) for r in rows if r["system"] == "original" and r["metric"] == "density_error"]
    assert errors == [0.0, 0.0]  # the original bars follow their own controls exactly
    _check_rows_measure_the_stored_generation_against_the_original(out, rows)
    summary = (out / "summary.md").read_text()
    for text in ("## Musical similarity", "## Control adherence", "## Paired tests", "| copy | model | CP |",
                 "| silence | model | GS |"):
        assert text in summary
    assert (out / "metrics.png").stat().st_size > 0 and (out / "controls.png").stat().st_size > 0
    generated = sorted((out / "generations" / "model").glob("*.mid"))
    assert len(generated) == 2
    stamps = [p.stat().st_mtime_ns for p in generated]
    assert _run(root, data, path, out) == 0  # resumed: nothing regenerated
    assert [p.stat().st_mtime_ns for p in generated] == stamps
    assert _run(root, data, path, out, "--bars", "1") == 2  # other prompt settings: refused, not mixed
    assert "other prompt settings" in capsys.readouterr().err


def test_a_system_that_changed_since_its_generations_is_refused(setup, tmp_path, capsys):
    root, data, path = setup
    out, model = tmp_path / "report", tmp_path / "m.pth"
    shutil.copy(path, model)
    shutil.copy(root / "tokenizer.json", tmp_path / "tokenizer.json")
    spec = f"m:model={model},temperature=0.5"
    assert _run(root, data, path, out, "--system", spec) == 0
    stored = json.loads(next((out / "generations" / "m").glob("*.json")).read_text())["system"]
    assert stored["sampler"]["temperature"] == 0.5 and len(stored["sha256"]["model"]) == 12
    assert _run(root, data, path, out, "--system", spec) == 0  # the same system: its generations are reused
    assert _run(root, data, path, out, "--system", spec.replace("0.5", "0.7")) == 2  # same name, other settings
    assert "system 'm' was generated with sampler" in capsys.readouterr().err
    torch.manual_seed(1)
    save_checkpoint(init_weights(RWKV7(tiny_config(InfillTokenizer().vocab_size)), seed=1), model)
    assert _run(root, data, path, out, "--system", spec) == 2  # another model behind the same path
    assert "system 'm' was generated with sha256" in capsys.readouterr().err


@pytest.fixture(scope="module")
def generated_once(setup, tmp_path_factory):
    """A report folder holding the generations of one system 'm' with every setting at its default."""
    root, data, path = setup
    out = tmp_path_factory.mktemp("identity") / "report"
    assert _run(root, data, path, out, "--system", "m", "--no-references") == 0
    return out


@pytest.mark.parametrize("change", ["n=2", "strict_density=0", "register=free", "free=1", "rank=controls",
                                    "context=1", "context_tokens=300", "layout=target-last", "top_k=5",
                                    "repetition_penalty=1.1", "engine=ggml"])
def test_a_system_whose_generation_settings_changed_is_refused(setup, generated_once, capsys, change):
    """Every setting that changes what a system generates is part of its identity (not only the sampler and files)."""
    root, data, path = setup
    out = generated_once
    assert _run(root, data, path, out, "--system", f"m:{change}", "--no-references") == 2, change
    key = change.split("=")[0]
    err = capsys.readouterr().err
    sampler_key = key in ("top_k", "repetition_penalty")
    assert f"system 'm' was generated with {'sampler' if sampler_key else key}" in err, err


def test_a_system_s_identity_records_the_sampling_its_mode_gets(tmp_path):
    from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig
    from midi_rwkv.metrics.systems import System

    model = tmp_path / "m.pth"
    model.write_bytes(b"weights")
    plain = System("m", model=str(model))
    assert plain.identity("bars")["sampler"] == vars(SamplerConfig())
    assert plain.identity("track")["sampler"] == vars(TRACK_SAMPLER) != vars(SamplerConfig())  # the paper's
    mine = System("m", model=str(model), sampler=SamplerConfig(temperature=0.5))
    assert mine.identity("track")["sampler"] == mine.identity("bars")["sampler"] == vars(SamplerConfig(0.5))
    assert System("copy").identity("track") == {"name": "copy"}  # a reference samples nothing: its name says it all


def _check_rows_measure_the_stored_generation_against_the_original(out, rows):
    """Every system's row is its own stored file scored against the original, not anything against itself."""
    value = {(r["system"], r["prompt"], r["metric"]): float(r["value"]) for r in rows}
    prompts = json.loads((out / "prompts.json").read_text())["prompts"]
    assert not all(value["copy", p["id"], "content_preservation"] == pytest.approx(1.0) for p in prompts)
    for system in ("model", "free", "copy", "silence"):
        for p in prompts:
            stored = json.loads((out / "generations" / system / f"{p['id']}.json").read_text())
            generated = Score(str(out / "generations" / system / f"{p['id']}.mid"))
            piece = Score(str(CHORALE))  # every corpus file is a copy of the chorale
            bars = [b for b in InfillTokenizer().prepare(piece).bars[p["start"] : p["end"]]]
            region = Region(p["track"], tuple(bars), piece.ticks_per_quarter)
            assert value[system, p["id"], "content_preservation"] == pytest.approx(
                content_preservation(generated, piece, region)
            )
            by_hand = [abs(a["density"] - b["density"]) for a, b in zip(stored["requested"], stored["realised"])]
            assert value[system, p["id"], "density_error"] == pytest.approx(sum(by_hand) / len(by_hand))


def test_silence_reference_empties_the_span_and_nothing_else(tok):
    piece = tok.prepare(CHORALE)
    score = reference_score("silence", piece, 1, (4, 6))
    start, end = piece.bars[4].start, piece.bars[6].start
    assert note_tuples(score.tracks[1], start, end) == [] and note_tuples(piece.original.tracks[1], start, end)
    assert note_tuples(score.tracks[1], None, start) == note_tuples(piece.original.tracks[1], None, start)
    assert note_tuples(score.tracks[1], end) == note_tuples(piece.original.tracks[1], end)
    assert [note_tuples(t) for i, t in enumerate(score.tracks) if i != 1] == [
        note_tuples(t) for i, t in enumerate(piece.original.tracks) if i != 1
    ]
    whole = reference_score("silence", piece, 1, (0, piece.num_bars))
    assert not whole.tracks[1].notes and len(whole.tracks) == len(piece.original.tracks)


def test_a_stored_generation_whose_track_came_out_empty_keeps_its_track_numbers(tmp_path):
    from midi_rwkv.metrics.evaluate import _stored_generation

    original = Score(str(CHORALE))
    emptied = original.copy()
    emptied.tracks[1].notes.clear()
    emptied.dump_midi(str(tmp_path / "g.mid"))
    assert len(Score(str(tmp_path / "g.mid")).tracks) == 3  # symusic reads no empty track: Tenor moved to 1
    stored = _stored_generation(tmp_path / "g.mid", original, 1)
    assert [t.name for t in stored.tracks] == [t.name for t in original.tracks] and not stored.tracks[1].notes
    assert note_tuples(stored.tracks[2]) == note_tuples(original.tracks[2])
    original.dump_midi(str(tmp_path / "o.mid"))
    assert len(_stored_generation(tmp_path / "o.mid", original, 1).tracks) == 4  # nothing to restore


def test_copy_reference_copies_the_previous_bars(tok):
    piece = tok.prepare(CHORALE)
    score = reference_score("copy", piece, 1, (4, 6))
    bars = piece.bars
    shift = bars[4].start - bars[2].start
    copied = [(t - shift, d, p) for t, d, p, _ in note_tuples(score.tracks[1], bars[4].start, bars[6].start)]
    source = [(t, d, p) for t, d, p, _ in note_tuples(piece.original.tracks[1], bars[2].start, bars[4].start)]
    assert [c[0] for c in copied] == [s[0] for s in source] and [c[2] for c in copied] == [s[2] for s in source]
    assert note_tuples(score.tracks[0]) == note_tuples(piece.original.tracks[0])


def _copy_fixture(tok):
    """6 bars of 4/4; track 0: bar 0 a quarter and a dotted half, bar 1 a whole note on its last beat (it rings 3
    beats into bar 2), then one quarter per bar; track 1: a whole note per bar."""
    bar = 4 * TPQ
    melody = [(0, TPQ, 60, 80), (2 * TPQ, 3 * TPQ, 62, 81), (bar + 3 * TPQ, 4 * TPQ, 64, 82)]
    melody += [(b * bar, TPQ, 70 + b, 83) for b in range(2, 6)]
    score = make_score([(0, 4, 4)], [(0, False, melody), (32, False, [(b * bar, bar, 48, 70) for b in range(6)])])
    return tok.prepare(score), bar


def test_copy_reference_copies_the_bars_before_from_bar_0_clipped_at_the_span_s_end(tok):
    piece, bar = _copy_fixture(tok)
    assert piece.num_bars == 6
    score = reference_score("copy", piece, 0, (2, 4))  # the two bars before: bars 0-1
    assert note_tuples(score.tracks[0], 2 * bar, 4 * bar) == [
        (2 * bar, TPQ, 60, 80), (2 * bar + 2 * TPQ, 3 * TPQ, 62, 81),
        (3 * bar + 3 * TPQ, TPQ, 64, 82),  # 4 beats long in bar 1, clipped to the 1 beat left in the span
    ]
    assert note_tuples(score.tracks[0], None, 2 * bar) == note_tuples(piece.original.tracks[0], None, 2 * bar)
    assert note_tuples(score.tracks[0], 4 * bar) == note_tuples(piece.original.tracks[0], 4 * bar)
    assert note_tuples(score.tracks[1]) == note_tuples(piece.original.tracks[1])
    first = reference_score("copy", piece, 0, (0, 2))  # nothing before bar 0: the two bars after it
    assert note_tuples(first.tracks[0], None, 2 * bar) == [(0, TPQ, 72, 83), (bar, TPQ, 73, 83)]
    four = tok.prepare(piece.original.copy().clip(0, 4 * bar))
    assert four.num_bars == 4  # no bars after the span: bars 0-1 before it are copied, not refused
    assert note_tuples(reference_score("copy", four, 0, (2, 4)).tracks[0], 2 * bar) == note_tuples(
        score.tracks[0], 2 * bar, 4 * bar)
    with pytest.raises(MidiRwkvError, match="no 4 bars next to bars 2-5"):
        reference_score("copy", piece, 0, (1, 5))


@pytest.mark.parametrize(
    "text, message",
    [
        ("orig inal", "letters"),
        ("original", "reserved"),
        ("x:temp=1", "unknown key"),
        ("x:top_k=a", "needs a whole number"),
        ("x:top_p=2", "invalid sampler"),
        ("x:engine=onnx", "'engine' must be one of"),
        ("x:layout=shuffled", "layout must be one of"),
    ],
)
def test_system_specs_are_checked(text, message):
    with pytest.raises(MidiRwkvError, match=message):
        parse_system(text, "m.pth")
    assert parse_system("t08:temperature=0.8,free=1", "m.pth").sampler.temperature == 0.8
    assert parse_system("fast:engine=ggml", "m.pth").options.engine == "ggml"
    assert parse_system("x", "m.pth").options.engine == "auto"  # the request's one default, as `infill` has it
    assert parse_system("x", "m.pth").layout is None  # the model's own
    assert parse_system("x:layout=target-last", "m.pth").layout == "target-last"
    assert parse_system("x", "m.pth").options.strict_density
    assert not parse_system("x:strict_density=0", "m.pth").options.strict_density


def test_track_mode_writes_whole_tracks_against_the_other_track_row(setup):
    root, data, path = setup
    out = root / "tracks"
    argv = ["evaluate", "--no-progress", "--out", str(out), "--data", f"folder:{data}", "--model", str(path),
            "--split", "all", "--prompts", "2", "--track", "random", "--mode", "track", "--system", "model"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["system"] for r in rows} == {"model", "original", "other-track", "silence"}
    value = {(r["system"], r["prompt"], r["metric"]): float(r["value"]) for r in rows}
    prompts = json.loads((out / "prompts.json").read_text())["prompts"]
    piece = InfillTokenizer().prepare(Score(str(CHORALE)))
    for p in prompts:
        assert (p["start"], p["end"]) == (0, piece.num_bars)
        assert value["original", p["id"], "control_error"] == 0 and value["original", p["id"], "out_of_register"] == 0
        assert value["other-track", p["id"], "content_preservation"] < 1
        region = Region(p["track"], tuple(piece.bars), piece.original.ticks_per_quarter)  # silence: measured on its
        silent = reference_score("silence", piece, p["track"], (0, piece.num_bars))  # own empty track, not the next
        assert value["silence", p["id"], "groove_similarity"] == pytest.approx(
            groove_similarity(silent, piece.original, region))
        stored = json.loads((out / "generations" / "model" / f"{p['id']}.json").read_text())
        assert "repetition" in stored["requested"][0] and stored["stopped"] in ("done", "max_tokens")
    summary = (out / "summary.md").read_text()
    assert "whole tracks written again" in summary and "| other-track | model | CP |" in summary


def test_other_track_reference_copies_the_best_match_into_the_register(tok):
    piece = tok.prepare(CHORALE)
    score = reference_score("other-track", piece, 3, (0, piece.num_bars))  # the bass
    bass = [n.pitch for n in piece.original.tracks[3].notes]
    copied = [n.pitch for n in score.tracks[3].notes]
    sources = [sorted((n.time, n.pitch % 12) for n in piece.original.tracks[i].notes) for i in range(3)]
    assert sorted((n.time, n.pitch % 12) for n in score.tracks[3].notes) in sources  # one voice, moved by octaves
    assert abs(sorted(copied)[len(copied) // 2] - sorted(bass)[len(bass) // 2]) <= 6
    for i in range(3):
        assert note_tuples(score.tracks[i]) == note_tuples(piece.original.tracks[i])


def test_best_of_n_and_a_reference_that_cannot_be_made_does_not_stop_the_evaluation(setup):
    root, data, path = setup
    out = root / "best"
    # 5 bars of a 9-bar piece: no 5 bars on either side to copy, so every 'copy' row is skipped, with its reason
    argv = ["evaluate", "--no-progress", "--out", str(out), "--data", f"folder:{data}", "--model", str(path),
            "--split", "all", "--prompts", "2", "--bars", "5", "--context", "1", "--track", "1", "--max-tokens", "200",
            "--system", "one", "--system", "best3:n=3,rank=likelihood"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["system"] for r in rows} == {"one", "best3", "original", "silence"}
    summary = (out / "summary.md").read_text()
    assert "## Skipped" in summary and "copy/" in summary and "no 5 bars next to bars" in summary
    for p in json.loads((out / "prompts.json").read_text())["prompts"]:
        best = json.loads((out / "generations" / "best3" / f"{p['id']}.json").read_text())
        assert best["system"]["n"] == 3 and best["system"]["rank"] == "likelihood" and "mean_logprob" in best
    with pytest.raises(MidiRwkvError, match="'n' must be"):
        parse_system("x:n=99", "m.pth")


def test_silent_bars_counts_only_bars_asked_for_four_or_more_notes():
    from midi_rwkv.metrics.adherence import adherence
    from midi_rwkv.tokenizer import BarControls

    asked = [BarControls(16), BarControls(4), BarControls(3), BarControls(0), BarControls(8)]
    got = [BarControls(0), BarControls(5), BarControls(0), BarControls(0), BarControls(0)]
    assert adherence(asked, got)["silent_bars"] == pytest.approx(2 / 3)  # bars 0 and 4 of the three asked for 4+
    assert math.isnan(adherence(asked[2:4], got[2:4])["silent_bars"])  # no bar asked for 4: undefined
