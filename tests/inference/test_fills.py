"""Whole tracks, new tracks, several fills in one request, whole-song context: nothing else changes."""

import pytest
import torch
from symusic import Score

from midi_rwkv.cli import main
from midi_rwkv.inference.constraints import BarInfillConstraint, TokenTables
from midi_rwkv.inference.generator import Generator, TorchEngine
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import BarFill, ControlRequest, NewTrack, TrackFill
from midi_rwkv.model import save_checkpoint
from tests.conftest import TPQ, note_tuples
from tests.inference.test_inference import BarsAtOnce

BAR = 4 * TPQ


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


class OneNotePerBar:
    """The tiny model as an engine whose every bar is one complete note, then a bar line: Position_0, a pitch
    (``PitchDrum_36`` when the track written is the drums), ``Velocity_79``, ``Duration_1.0.4``, ``Bar_None``.

    Why: whole and new tracks rest no longer than the track did (``BarInfillConstraint(max_rest=...)``), so a bar
    that has no finished note yet may not end. With :class:`BarsAtOnce` (bar lines certain) the random model then
    samples hundreds of tokens per track (592 for the quartet's melody), slow on a busy CPU; this writes a bar in
    five, and the tests can check where the written notes land.

    Each step's logits rank the tokens the note needs next (every other token is -inf: a sampled step where the
    engine allows none of them raises); the engine's bans (the kept register, a full bar) pick the best allowed
    one: the pitches are ranked by their distance from middle C, and a bar line comes last, so a bar that may take
    no note ends at once. The rungs are spaced by a factor of 1.5, so a repetition penalty below that never
    reorders them. The model still reads every token; its logits are not used.
    """

    name = "test: one note per bar"
    CENTRE = 60  # the preferred pitch; the register bans pick the nearest allowed one

    def __init__(self, model, vocab):
        self.inner, self.config, self.vocab = TorchEngine(model), model.config, vocab
        names = vocab.tokens
        self.kind = {i: name.split("_")[0] for i, name in names.items()}
        pitches = sorted((i for i, name in names.items() if name.startswith("Pitch_")),
                         key=lambda i: (abs(int(names[i].split("_")[1]) - self.CENTRE), names[i]))
        bar = [vocab.bar]
        self.after = {  # the kind of the last token read -> the tokens wanted next, best first
            "Position": pitches + bar,
            "Pitch": [vocab["Velocity_79"]] + bar,
            "Velocity": [vocab["Duration_1.0.4"]] + bar,
            "Duration": bar,
        }
        self.drum_after = {**self.after, "Position": [vocab["PitchDrum_36"]] + bar, "PitchDrum": self.after["Pitch"]}
        self.bar_opens = [vocab["Position_0"]] + bar  # after a bar header or its controls

    def writes_drums(self, prompt: list[int]) -> bool:
        """Is the track being written the drums: the program of the track with the masked bars (bar infill),
        else of the last track (whole and new tracks go last)."""
        masked = self.vocab["Infill_Bar"]
        head = prompt[: prompt.index(masked)] if masked in prompt else prompt
        programs = [self.vocab.tokens[i] for i in head if self.kind[i] == "Program"]
        return programs[-1] == "Program_-1"

    def logits(self, last: int, drums: bool):
        wanted = (self.drum_after if drums else self.after).get(self.kind[last], self.bar_opens)
        logits = torch.full((self.config.vocab_size,), float("-inf"))
        logits[wanted] = torch.tensor([0.0] + [-100 * 1.5**rung for rung in range(1, len(wanted))])
        return logits

    def prefill(self, tokens, state):
        inner, read = state if state is not None else (None, ())
        _, inner = self.inner.prefill(tokens, inner)
        read = (*read, *tokens)  # the whole prompt, also when the generator continues a cached prefix
        return self.logits(read[-1], self.writes_drums(list(read))), (inner, read)

    def fork(self, state, k):
        inner, read = state
        streams, logits, drums = self.inner.fork(inner, k), self.logits, self.writes_drums(list(read))
        last = [read[-1]] * k

        class Streams:
            def step(self, tokens):
                streams.step(tokens)
                last[:] = [t if t is not None else was for t, was in zip(tokens, last)]
                return torch.stack([logits(t, drums) for t in last])

        return Streams()


def one_note_per_bar(model, tok):
    """An infiller whose every bar is one quarter note on the downbeat (see :class:`OneNotePerBar`)."""
    return Infiller(Generator(OneNotePerBar(model, tok.codec.vocab)), tok, structure="off")


def bars_end_at_once(model, tok):
    """An infiller whose bars end as soon as they start: empty, where the rest limit allows it (see BarsAtOnce)."""
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    return Infiller(Generator(BarsAtOnce(model, bar_id)), tok, structure="off")


def unchanged_except(before, after, track: int, start: int = 0, end: int = 1 << 62):
    for i, (a, b) in enumerate(zip(before.tracks, after.tracks)):
        if i != track:
            assert note_tuples(a) == note_tuples(b), i
            assert (a.program, a.is_drum, a.name) == (b.program, b.is_drum, b.name), i
        else:
            assert note_tuples(a, None, start) == note_tuples(b, None, start)
            assert note_tuples(a, end) == note_tuples(b, end)


# The pitch OneNotePerBar writes: the one nearest middle C in the kept register. The melody (program 0) plays
# 67-71, so 66-72 is kept: 66; the bass 36-39 (35-40): 40; the drums their kick. Without a register: 60.
WRITTEN_PITCH = {0: 66, 2: 40, 3: 36}


@pytest.mark.parametrize("track", [0, 2, 3], ids=["melody", "bass", "drums"])
def test_a_whole_track_is_written_again_and_nothing_else_changes(tok, model, quartet, track):
    piece = tok.prepare(quartet)
    (c,) = one_note_per_bar(model, tok).regenerate_track(piece, track, n=1, seed=0)
    g = c.generation
    tables = TokenTables.build(tok.codec)
    assert g.stopped == "done" and g.ids[-1] == tables.track_end and c.report.bars_generated == 8
    assert len(c.score.tracks) == 4
    unchanged_except(quartet, c.score, track)
    written = c.score.tracks[track].notes  # the engine's one quarter note at the start of every bar
    pitch = WRITTEN_PITCH[track]  # in the track's own register (also for program 0)
    assert [(n.time, n.duration, n.pitch) for n in written] == [(b * BAR, TPQ, pitch) for b in range(8)]
    kept = quartet.tracks[track]
    assert (c.score.tracks[track].program, c.score.tracks[track].is_drum) == (kept.program, kept.is_drum)
    assert c.requested == [tok.track_controls_of(quartet, "", track)]


def test_a_whole_track_from_a_sampling_model_keeps_every_note_inside_the_piece(tok, model, quartet):
    piece = tok.prepare(quartet)
    written = []
    for c in Infiller(Generator(model), tok, structure="off").regenerate_track(piece, 1, n=2, seed=1, max_tokens=300):
        unchanged_except(quartet, c.score, 1)
        written += c.score.tracks[1].notes
    assert written and all(0 <= n.time < 8 * BAR for n in written)  # some notes (this seed writes 2), all inside


def test_whole_track_controls_can_be_asked_for_and_drums_refuse_pitch_ones(tok, model, quartet):
    piece = tok.prepare(quartet)
    infiller = one_note_per_bar(model, tok)
    (c,) = infiller.regenerate_track(piece, 0, ControlRequest(density=[3, 6], polyphony=(1, 2)), n=1)
    assert c.requested[0].density == (3, 6) and c.requested[0].polyphony == (1, 2)
    with pytest.raises(Exception, match="drum track"):
        infiller.regenerate_track(piece, 3, ControlRequest(polyphony=(1, 2)), n=1)


class NotesForever(BarsAtOnce):
    """BarsAtOnce's trick with a note token made certain instead: left alone, the model never ends a bar."""


def test_a_whole_track_s_bars_hold_no_more_notes_than_its_density_control_allows(tok, model, quartet):
    tables = TokenTables.build(tok.codec)
    pitch = tok.codec.vocab["Pitch_67"]
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(NotesForever(model, pitch)), tok, structure="off")
    (c,) = infiller.regenerate_track(piece, 1, ControlRequest(density=[2, 5]), n=1, seed=0)  # chords: 3 per bar
    ids = c.generation.ids
    assert c.generation.stopped == "done" and ids[-1] == tables.track_end
    bars, count = [], 0
    for t in ids:
        if tables.starts_bar[t] or t == tables.track_end:
            bars.append(count)
            count = 0
        count += int(tables.notes[t])
    assert bars == [5] * 8  # every bar filled to the limit, then closed
    (free,) = infiller.regenerate_track(piece, 1, ControlRequest(density=[2, 18]), n=1, seed=0)  # "18+": the guard
    guard = max(32, 2 * piece.densest_bar())
    assert free.generation.stopped == "done" and free.generation.ids.count(pitch) == 8 * guard


def test_a_whole_track_that_comes_out_empty_is_pointed_out(tok, model, quartet, tmp_path):
    from midi_rwkv.commands.infilling import empty_track_note

    piece = tok.prepare(quartet)
    piece.longest_rest = lambda track=None: 8  # no rest limit: this model ends every bar at once, so no notes
    (c,) = bars_end_at_once(model, tok).regenerate_track(piece, 2, n=1, seed=0)
    assert not c.score.tracks[2].notes
    # what it got is no notes at all, not what was asked for
    assert c.realised[0].density == (0, 0) and c.requested[0].density != (0, 0) and c.control_error > 0
    assert empty_track_note(c.score).startswith("(track 2 came out empty")
    c.score.dump_midi(str(tmp_path / "c.mid"))  # the file keeps the empty track; symusic drops it when reading
    assert (tmp_path / "c.mid").read_bytes().count(b"MTrk") == 4 and len(Score(str(tmp_path / "c.mid")).tracks) == 3
    assert empty_track_note(quartet) is None


def test_the_densest_bar_counts_onsets_per_track_and_bar(tok, quartet):
    assert tok.prepare(quartet).densest_bar() == 8  # the drums' eighth notes


@pytest.mark.parametrize(
    "new",
    [NewTrack(program=33), NewTrack(is_drum=True, controls=ControlRequest(density=[8, 12]))],
    ids=["bass", "drums"],
)
def test_a_new_track_goes_under_the_others(tok, model, quartet, new):
    piece = tok.prepare(quartet)
    (c,) = one_note_per_bar(model, tok).add_track(piece, new, n=1, seed=0)
    assert len(c.score.tracks) == 5 and c.generation.stopped == "done" and c.report.bars_generated == 8
    for a, b in zip(quartet.tracks, c.score.tracks):
        assert note_tuples(a) == note_tuples(b) and (a.program, a.is_drum) == (b.program, b.is_drum)
    added = c.score.tracks[4]
    assert added.is_drum == new.is_drum and (new.is_drum or added.program == 33)
    pitch = 36 if new.is_drum else 55  # a bass (program 33) plays 28-55 (program_register): the nearest to 60
    assert [(n.time, n.duration, n.pitch) for n in added.notes] == [(b * BAR, TPQ, pitch) for b in range(8)]
    if new.is_drum:
        assert c.requested[0].density == (8, 12) and c.requested[0].polyphony is None
    else:  # the typical controls of the other pitched tracks
        assert c.requested[0].polyphony is not None


def test_several_fills_run_in_order_and_each_sees_the_last(tok, model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(model), tok, structure="off")
    fills = [BarFill(0, (2, 4)), TrackFill(2), NewTrack(program=40)]
    results = infiller.fill(piece, fills, n=2, seed=3, max_tokens=200)
    assert len(results) == 2
    for c in results:
        assert [s.fill for s in c.steps] == fills
        first, second, third = c.steps
        # the second fill's input is the first one's output: its score keeps the first fill's bars
        lo, hi = 2 * BAR, 4 * BAR
        assert note_tuples(second.score.tracks[0], lo, hi) == note_tuples(first.score.tracks[0], lo, hi)
        assert note_tuples(c.score.tracks[0]) == note_tuples(first.score.tracks[0])
        assert note_tuples(c.score.tracks[2]) == note_tuples(second.score.tracks[2])
        assert note_tuples(c.score.tracks[1]) == note_tuples(quartet.tracks[1])
        assert note_tuples(c.score.tracks[3]) == note_tuples(quartet.tracks[3])
        assert len(c.score.tracks) == 5 and third.score is c.score
    assert results[0].control_error == sum(s.control_error for s in results[0].steps)


def test_whole_song_context_reads_the_prompt_in_chunks_at_the_same_logits(tok, model, quartet, monkeypatch):
    piece = tok.prepare(quartet)
    seq = tok.bar_infill(piece, 0, (4, 5), context_bars=None, with_target=False)
    assert seq.window == (0, 8)
    whole, _ = TorchEngine(model).prefill(seq.ids, None)
    monkeypatch.setattr("midi_rwkv.inference.generator.PREFILL_CHUNK", 7)
    chunked, _ = TorchEngine(model).prefill(seq.ids, None)
    assert torch.allclose(whole, chunked, atol=1e-4)


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--track", "2"], "q_track2_whole_1.mid"),
        (["--new-track", "33"], "q_new33_1.mid"),
        (["--new-track", "--drums"], "q_newdrums_1.mid"),
        (
            ["--fill", "0:2-3", "--fill", "1:5-6,8-8", "--fill", "new:drums"],
            "q_track0_bars2-3+track1_bars5-6,8-8+newdrums_1.mid",
        ),
        (["--track", "0", "--bars", "2:3", "--context", "all"], "q_track0_bars2-3_1.mid"),
    ],
    ids=["whole", "new", "new-drums", "fills", "context-all"],
)
def test_infill_command_takes_every_kind_of_request(tmp_path, model, tok, quartet, capsys, argv, name):
    quartet.dump_midi(tmp_path / "q.mid")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    assert (
        main(
            [
                "infill",
                str(tmp_path / "q.mid"),
                "-n",
                "1",
                "--seed",
                "0",
                "--model",
                str(path),
                "--max-tokens",
                "150",
                "-o",
                str(out),
                *argv,
            ]
        )
        == 0
    )
    assert [p.name for p in out.iterdir()] == [name]
    assert "requested" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "say what to write"),
        (["--fill", "0:2-3", "--track", "0"], "--fill replaces"),
        (["--fill", "x:1"], "expected TRACK:SPANS"),
        (["--fill", "new:200"], "not a General MIDI program"),
        (["--fill", "0:7-12"], "outside the piece"),
        (["--fill", "0:2-3", "--fill", "9"], "track 9 does not exist"),
        (["--drums"], "--drums goes with --new-track"),
        (["--track", "0", "--free"], "free infilling is for bars of a track"),
        (["--track", "0", "--bars", "1:2", "--context", "lots"], "expected a number of bars or 'all'"),
    ],
    ids=["nothing", "both", "syntax", "program", "span", "track", "drums", "free", "context"],
)
def test_bad_requests_are_one_line_and_write_nothing(tmp_path, model, tok, quartet, capsys, argv, message):
    quartet.dump_midi(tmp_path / "q.mid")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    assert main(["infill", str(tmp_path / "q.mid"), "--model", str(path), "-o", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_roll_draws_the_original_and_every_candidate(tmp_path, model, tok, quartet):
    quartet.dump_midi(tmp_path / "q.mid")
    path = save_checkpoint(model, tmp_path / "m.pth")
    tok.save(tmp_path / "tokenizer.json")
    out = tmp_path / "out"
    argv = ["infill", str(tmp_path / "q.mid"), "--track", "0", "--bars", "2:3", "-n", "2", "--model", str(path),
            "--max-tokens", "60", "--roll", "-o", str(out)]
    assert main(argv) == 0
    png = out / "q_track0_bars2-3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert len(list(out.glob("*.mid"))) == 2


def test_whole_and_new_tracks_sample_with_the_papers_settings_unless_told(tok, model, quartet, monkeypatch):
    from midi_rwkv.inference.sampler import TRACK_SAMPLER, SamplerConfig

    infiller = one_note_per_bar(model, tok)
    used = []
    generate = infiller.generator.generate
    monkeypatch.setattr(infiller.generator, "generate",
                        lambda ids, constraints, sampler, *rest: used.append(sampler) or generate(ids, constraints,
                                                                                                  sampler, *rest))
    piece = tok.prepare(quartet)
    infiller.regenerate_track(piece, 1, n=1, seed=0)
    infiller.add_track(piece, NewTrack(program=33), n=1, seed=0)
    infiller.infill(piece, 1, (2, 4), n=1, seed=0)
    mine = SamplerConfig(temperature=0.5)
    infiller.regenerate_track(piece, 1, n=1, sampler=mine, seed=0)
    assert used == [TRACK_SAMPLER, TRACK_SAMPLER, None, mine]  # None: the generator's SamplerConfig()
    assert (TRACK_SAMPLER.temperature, TRACK_SAMPLER.repetition_penalty) == (1.0, 1.2)


def test_a_whole_track_rests_no_longer_than_the_track_did(tok, model, quartet, monkeypatch):
    import midi_rwkv.inference.infiller as infiller_module

    piece = tok.prepare(quartet)
    assert piece.longest_rest(2) == 0
    kept = [n.copy() for n in quartet.tracks[2].notes if n.time >= 5 * BAR]
    quartet.tracks[2].notes.clear()
    quartet.tracks[2].notes.extend(kept)  # the bass rests for its first 5 bars
    resting = tok.prepare(quartet)
    assert resting.longest_rest(2) == 5 and resting.longest_rest() == 5 and resting.longest_rest(0) == 0
    made = []
    monkeypatch.setattr(infiller_module, "BarInfillConstraint",
                        lambda *args, **kwargs: made.append(kwargs["max_rest"]) or BarInfillConstraint(*args, **kwargs))
    infiller = one_note_per_bar(model, tok)
    infiller.regenerate_track(resting, 2, n=1, seed=0)
    infiller.regenerate_track(resting, 0, n=1, seed=0)
    infiller.add_track(resting, NewTrack(program=33), n=1, seed=0)
    infiller.add_track(piece, NewTrack(program=33), n=1, seed=0)
    # a whole track: its own longest rest; a new track: the longest of any track's (here the bass's, not track 0's)
    assert made == [5, 0, 5, 0]


def test_bar_infill_writes_in_the_register_around_the_span_and_replaces_every_note_in_it(tok, model, quartet):
    low = [n for n in quartet.tracks[0].notes if 2 * BAR <= n.time < 4 * BAR]
    for n in low:
        n.pitch = 40  # inside the span the melody drops far below its register elsewhere (67-71)
    piece = tok.prepare(quartet)
    from midi_rwkv.inference.infiller import track_register

    assert track_register(piece, 0, (2, 4)) == (66, 72) and track_register(piece, 0) == (39, 72)
    (c,) = one_note_per_bar(model, tok).infill(piece, 0, (2, 4), n=1, seed=0)
    unchanged_except(quartet, c.score, 0, 2 * BAR, 4 * BAR)
    # exactly the generated notes, nearest middle C in the register played outside the span (its own notes left out)
    assert note_tuples(c.score.tracks[0], 2 * BAR, 4 * BAR) == [(2 * BAR, TPQ, 66, 79), (3 * BAR, TPQ, 66, 79)]
    (free,) = Infiller(Generator(OneNotePerBar(model, tok.codec.vocab)), tok, structure="off",
                       keep_register=False).infill(piece, 0, (2, 4), n=1, seed=0)
    assert note_tuples(free.score.tracks[0], 2 * BAR, 4 * BAR) == [(2 * BAR, TPQ, 60, 79), (3 * BAR, TPQ, 60, 79)]
