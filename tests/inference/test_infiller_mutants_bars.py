"""What the mutation run of ``inference/infiller.py`` showed the other tests let through (issue 34), for bar
fills: the structure settings, one bar fill's candidates, controls and guards, and the note and register limits.
(Requests, opening models, several fills and whole or new tracks: test_infiller_mutants.py.)"""

from __future__ import annotations

import pytest

from midi_rwkv.errors import ControlError, MidiRwkvError
from midi_rwkv.inference.constraints import TokenTables
from midi_rwkv.inference.generator import Generator
from midi_rwkv.inference.infiller import Infiller
from midi_rwkv.inference.requests import BarFill, ControlRequest
from tests.conftest import TPQ, make_score, note_tuples
from tests.inference.test_fills import OneNotePerBar
from tests.inference.test_inference import BarsAtOnce
from tests.inference.test_infiller_mutants import BAR, one_note
from tests.inference.test_structure_fill import _abab
from tests.inference.test_structure_fill import _span_notes as _span

# ---- structure settings ----------------------------------------------------------------------------------------------

def test_an_unknown_structure_setting_is_refused_naming_every_setting(tok, tiny_model):
    infiller = Infiller(Generator(tiny_model), tok)
    with pytest.raises(MidiRwkvError) as err:
        infiller.with_structure("loose")
    assert str(err.value) == "unknown structure setting 'loose': choose from follow, vary, context, off"
    with pytest.raises(MidiRwkvError) as err:
        Infiller(Generator(tiny_model), tok, structure="loose")
    assert str(err.value) == "unknown structure setting 'loose': choose from follow, vary, context, off"


def test_a_followed_repeat_keeps_its_source_timing_only_where_the_tokenizer_s_bars_are_the_song_s(tok, tiny_model):
    """4/2 is written as two bars of 4/4: the constraint's bars are not the song's, so the followed bars stay on the
    tokenizer's grid (the source's own notes are copied only bar for bar)."""
    from symusic import TimeSignature

    from tests.structure.test_structure import song

    score = song("ABAB", melody_repeats=True)
    score.time_signatures.clear()
    score.time_signatures.append(TimeSignature(0, 4, 2))  # 8 bars of 4/2: A = bars 0-1 and 4-5
    for note in score.tracks[0].notes:  # played, not quantised: the same nudge in every repeat
        note.time += 7
        note.velocity = 61
    piece = tok.prepare(score, "breve")
    assert (piece.num_bars, len(piece.token_bars)) == (8, 16)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    (c,) = infiller.infill(piece, 0, (4, 6), n=1, seed=0, max_tokens=250)
    assert "4 of 4 bars follow" in c.form
    start, end = piece.bars[4].start, piece.bars[6].start
    written = sorted((n.time, n.pitch, n.velocity) for n in c.score.tracks[0].notes if start <= n.time < end)
    source = sorted((n.time, n.pitch) for n in piece.original.tracks[0].notes if n.time < piece.bars[2].start)
    assert [p for _, p, _ in written] == [p for _, p in source]  # the repeat, note for note
    assert all(t % (TPQ // 8) == 0 and v != 61 for t, _, v in written)  # but quantised, not the source's own notes


def test_a_repeat_at_the_end_of_the_song_keeps_its_source_notes(tok, tiny_model):
    from tests.structure.test_structure import song

    score = song("ABAB", melody_repeats=True)
    for note in score.tracks[0].notes:  # played, not quantised
        note.time += 7
        note.velocity = 61
    piece = tok.prepare(score, "played")
    (c,) = Infiller(Generator(tiny_model), tok, structure="follow").infill(piece, 0, (12, 16), n=1, seed=0,
                                                                           max_tokens=250)
    assert "4 of 4 bars follow" in c.form
    span = piece.bars[12].start
    assert note_tuples(c.score.tracks[0], span) == note_tuples(piece.original.tracks[0], span)


# ---- infill: one bar fill --------------------------------------------------------------------------------------------

def test_infill_writes_four_reproducible_candidates_of_the_fill_asked_for(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    request = ControlRequest(density=[2, 3])
    first = infiller.infill(piece, 1, [2, 4], request, seed=7, max_tokens=20)
    assert len(first) == 4 and all(c.fill == BarFill(1, (2, 4), request) for c in first)
    again = infiller.infill(piece, 1, [2, 4], request, seed=7, max_tokens=20)
    assert [c.generation.ids for c in first] == [c.generation.ids for c in again]
    assert all([r.density for r in c.requested] == [2, 3] for c in first)


def test_free_infilling_with_controls_is_refused_in_words(tok, tiny_model, quartet):
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    with pytest.raises(ControlError) as err:
        infiller.infill(tok.prepare(quartet), 0, (2, 4), ControlRequest(density=[3]), n=1, free=True)
    assert str(err.value) == "--free takes no --density, --polyphony or --duration (free infilling gets no controls)"


def test_infill_sends_controls_and_the_prompt_without_the_target_unless_told(tok, tiny_model, quartet):
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(tiny_model, bar_id)), tok, structure="off")
    piece = tok.prepare(quartet)
    (c,) = infiller.infill(piece, 0, (2, 4), n=1, seed=0, max_tokens=50)
    assert any(t in tok.codec.vocab.control_ids for t in c.generation.ids)
    seq = tok.bar_infill(piece, 0, (2, 4), controls=c.requested, context_bars=16, max_len=1024, with_target=False)
    assert c.generation.prompt_tokens == len(seq.ids)
    vocab = tok.codec.vocab
    (asked,) = infiller.infill(piece, 0, (2, 4), ControlRequest(density=[1, 2]), n=1, seed=0, max_tokens=50)
    written = [vocab.tokens[t] for t in asked.generation.ids if t in vocab.control_ids]
    assert "ACBarNoteDensity_2" in written and "ACBarNoteDensity_4" not in written  # the request's, not the melody's


def test_a_drum_bar_fill_measures_only_density(tok, tiny_model, quartet):
    piece = tok.prepare(quartet)
    (c,) = one_note(tiny_model, tok).infill(piece, 3, (2, 4), n=1, seed=0)
    assert len(c.realised) == 2 and all(r.polyphony is None and r.durations is None for r in c.realised)
    assert [r.density for r in c.realised] == [1, 1]  # the engine's one kick a bar



def test_a_drum_track_left_empty_by_its_fill_reads_as_empty_drum_bars(tok, tiny_model):
    from midi_rwkv.tokenizer import BarControls

    piano = [(b * BAR, TPQ, 60, 80) for b in range(6)]
    drums = [(b * BAR + k * TPQ, TPQ // 4, 36, 100) for b in (2, 3) for k in range(4)]  # only in the bars filled
    piece = tok.prepare(make_score([(0, 4, 4)], [(0, False, piano), (0, True, drums)]))
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(tiny_model, bar_id)), tok, structure="off")
    (c,) = infiller.infill(piece, 1, (2, 4), n=1, seed=0, max_tokens=50)  # every bar ends at once: no notes
    assert not c.score.tracks[1].notes
    assert c.realised == [BarControls(0), BarControls(0)]  # drum bars: density only


def test_free_infilling_is_held_only_by_the_runaway_guard(tok, tiny_model, quartet):
    from tests.inference.test_fills import NotesForever

    pitch = tok.codec.vocab["Pitch_67"]
    infiller = Infiller(Generator(NotesForever(tiny_model, pitch)), tok, structure="off", keep_register=False)
    piece = tok.prepare(quartet)
    (free,) = infiller.infill(piece, 0, (2, 3), n=1, seed=0, max_tokens=300, free=True)
    assert free.generation.stopped == "done" and free.generation.ids.count(pitch) == max(32, 2 * piece.densest_bar())
    (strict,) = infiller.infill(piece, 0, (2, 3), n=1, seed=0, max_tokens=300)
    assert strict.generation.ids.count(pitch) == strict.requested[0].density == 4


def test_later_candidates_are_never_the_repeat_itself(tok, tiny_model):
    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    original = _span(piece.original, piece, 0, (8, 12))
    later = infiller.infill(piece, 0, (8, 12), n=2, seed=0, max_tokens=250, first_candidate=1)
    assert all(_span(c.score, piece, 0, (8, 12)) != original for c in later)


def test_free_infilling_follows_a_repeat_whatever_its_controls(tok, tiny_model):
    from tests.structure.test_structure import song

    piece = tok.prepare(song("ABAB"), "abab")  # the melody differs in every bar; the other tracks repeat
    infiller = Infiller(Generator(tiny_model), tok, structure="follow")
    (free,) = infiller.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=5, free=True)
    (guided,) = infiller.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=5)
    assert "4 of 4 bars follow" in free.form and "4 of 4 bars follow" not in guided.form


def test_the_context_setting_reaches_back_to_the_repeat_it_shows(tok, tiny_model):
    from tests.structure.test_structure import song

    piece = tok.prepare(song("ABCBCA", melody_repeats=True), "far")  # the last A repeats bars 0-3, 20 bars back
    infiller = Infiller(Generator(tiny_model), tok, structure="context")

    def prompt(infiller, **kwargs):
        (c,) = infiller.infill(piece, 0, (20, 24), n=1, seed=0, max_tokens=3, context_tokens=100_000, **kwargs)
        return c.generation.prompt_tokens

    off = infiller.with_structure("off")
    assert prompt(infiller) == prompt(off, context_bars=20) > prompt(off)


def test_a_bar_context_is_capped_at_four_times_the_training_length_unless_told(tok, tiny_model):
    from tests.structure.test_structure import song

    piece = tok.prepare(song("ABCBCA", melody_repeats=True), "long")
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    assert tiny_model.config.ctx_len * 4 == 1024

    def prompt(**kwargs):
        (c,) = infiller.infill(piece, 0, (10, 12), n=1, seed=0, max_tokens=3, **kwargs)
        return c.generation.prompt_tokens

    capped = prompt()
    assert capped == prompt(context_tokens=1024) < prompt(context_tokens=1280) < prompt(context_tokens=100_000)
    assert capped <= 1024


def test_a_bar_that_does_not_follow_its_source_keeps_the_register(tok, tiny_model):
    piece = _abab(tok)
    enc = tok.encode(piece)
    asked = [c.density for c in enc.bar_controls(piece.track_index(0), piece.token_span(8, 12))]
    asked[1] = 1  # bar 9 asks for other controls than its source: it does not follow, the engine writes one note

    def bar_9(keep_register):
        infiller = Infiller(Generator(OneNotePerBar(tiny_model, tok.codec.vocab)), tok, structure="follow",
                            keep_register=keep_register)
        (c,) = infiller.infill(piece, 0, (8, 12), ControlRequest(density=asked), n=1, seed=0, max_tokens=300)
        assert "3 of 4 bars follow" in c.form
        return sorted(n.pitch for n in c.score.tracks[0].notes if piece.bars[9].start <= n.time < piece.bars[9].end)

    assert bar_9(True) == [71]  # the melody plays 72-83 around the span: the nearest pitch to 60 it allows
    assert bar_9(False) == [60]


def test_a_bar_that_does_not_follow_its_source_holds_the_notes_it_asks_for(tok, tiny_model):
    from tests.inference.test_fills import NotesForever

    piece = _abab(tok)
    enc = tok.encode(piece)
    asked = [c.density for c in enc.bar_controls(piece.track_index(0), piece.token_span(8, 12))]
    asked[1] = 1  # bar 9 asks for one note, unlike its source: it does not follow, and the engine never ends a bar
    pitch = tok.codec.vocab["Pitch_67"]
    infiller = Infiller(Generator(NotesForever(tiny_model, pitch)), tok, structure="follow", keep_register=False)
    (c,) = infiller.infill(piece, 0, (8, 12), ControlRequest(density=asked), n=1, seed=0, max_tokens=300)
    assert "3 of 4 bars follow" in c.form and c.generation.stopped == "done"
    tables = TokenTables.build(tok.codec)
    notes = [0]  # per bar of the generated span
    for t in c.generation.ids:
        if tables.starts_bar[t]:
            notes.append(0)
        notes[-1] += int(tables.notes[t])
    assert notes == asked  # bar 9 its one note; the followed bars no more than their source's (what they ask)


def test_vary_leans_on_the_repeat_in_every_candidate(tok, tiny_model):
    piece = _abab(tok)
    infiller = Infiller(Generator(tiny_model), tok, structure="vary")
    (varied,) = infiller.infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=250)
    (plain,) = infiller.with_structure("off").infill(piece, 0, (8, 12), n=1, seed=0, max_tokens=250)
    assert "bars 1-4 are a repeat" in varied.form
    assert varied.generation.ids != plain.generation.ids  # the same prompt and seed: only the copying differs


def test_with_the_structure_off_there_is_no_form_plan(tok, tiny_model):
    piece = _abab(tok)
    enc = tok.encode(piece)
    requested = enc.bar_controls(piece.track_index(0), piece.token_span(8, 12))
    infiller = Infiller(Generator(tiny_model), tok, structure="off")
    plan = infiller.form_plan(piece, enc, 0, (8, 12), requested, free=False)
    assert (plan.source, plan.active, plan.note, plan.weights) == (None, False, "", (0.0,) * 4)
    assert infiller.with_structure("follow").form_plan(piece, enc, 0, (8, 12), requested, free=False).active


def test_a_bar_asking_for_18_or_more_notes_is_held_by_the_runaway_guard(tok, tiny_model, quartet):
    from tests.inference.test_fills import NotesForever

    pitch = tok.codec.vocab["Pitch_67"]
    infiller = Infiller(Generator(NotesForever(tiny_model, pitch)), tok, structure="off", keep_register=False)
    piece = tok.prepare(quartet)
    (c,) = infiller.infill(piece, 0, (2, 3), ControlRequest(density=[18]), n=1, seed=0, max_tokens=300)
    assert c.generation.stopped == "done" and c.generation.ids.count(pitch) == max(32, 2 * piece.densest_bar())



# ---- the limits: notes per bar and the register ----------------------------------------------------------------------

def test_a_bar_holds_at_most_twice_the_densest_bar_or_the_track_s_own_density(tok):
    from midi_rwkv.inference.infiller import bar_note_limit
    from midi_rwkv.tokenizer.controls import TrackControls

    busy = make_score([(0, 4, 4)], [(0, False, [(k * TPQ // 8, TPQ // 8, 60, 80) for k in range(20)])])
    piece = tok.prepare(busy)  # 20 onsets in bar 0
    assert piece.densest_bar() == 20 and bar_note_limit(piece) == 40
    assert bar_note_limit(piece, TrackControls((2, 5), 0.0)) == 5
    assert bar_note_limit(piece, TrackControls((2, 18), 0.0)) == 40  # "18+": the guard
    assert bar_note_limit(tok.prepare(make_score([(0, 4, 4)], [(0, False, [(0, TPQ, 60, 80)])]))) == 32


def test_the_register_is_what_the_track_plays_outside_the_span(tok, quartet):
    from midi_rwkv.inference.infiller import track_register

    for n in quartet.tracks[0].notes:
        if 2 * BAR <= n.time < 4 * BAR:
            n.pitch = 40
    piece = tok.prepare(quartet)
    assert track_register(piece, 0, (2, 4)) == (66, 72) and track_register(piece, 0) == (39, 72)
    assert track_register(piece, 3) is None  # drums
    edges = make_score([(0, 4, 4)], [(0, False, [(0, TPQ, 50, 80), (BAR, TPQ, 60, 80), (2 * BAR, TPQ, 62, 80),
                                                  (3 * BAR, TPQ, 64, 80), (4 * BAR, TPQ, 80, 80)])])
    piece = tok.prepare(edges)
    assert track_register(piece, 0) == (49, 81)  # the note at tick 0 counts
    assert track_register(piece, 0, (1, 4)) == (49, 81)  # the note on the span's end (bar 4's downbeat) too


