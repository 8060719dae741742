"""The live engine: each part's bar after next, written on the bar grid, in register, before it is due; controls
that change between bars; the take's bars encoded as the whole piece encodes them; prompts read once."""

from __future__ import annotations

import pytest

from midi_rwkv.inference.infiller import program_register
from midi_rwkv.inference.requests import NewTrack
from midi_rwkv.live import LiveControls, LiveEngine, LiveOptions
from midi_rwkv.live.encoding import BarEncoder
from midi_rwkv.live.take import song_grid
from midi_rwkv.live.window import window_start
from tests.conftest import TPQ
from tests.live.conftest import melody

PARTS = [NewTrack(0), NewTrack(33), NewTrack(is_drum=True)]


def assert_on_grid(engine: LiveEngine, step) -> None:
    """Every written note starts inside its bar (as the front end gets it and as the take holds it), and a pitched
    part's notes lie in its register."""
    for part_bar in step.parts:
        bar = engine.bar(part_bar.bar)
        part = next(p for p in engine.parts if p.track == part_bar.track)
        for note in part_bar.notes:
            assert 0 <= note.start < bar.quarters(engine.tpq)
            if part.register is not None:
                assert part.register[0] <= note.pitch <= part.register[1]
        held = engine.take.score.tracks[part.track].notes
        assert len([n for n in held if bar.start <= n.time < bar.end]) == len(part_bar.notes)


def test_each_next_bar_is_written_on_the_grid_in_register_before_it_is_due(infiller):
    engine = LiveEngine(infiller, None, PARTS, options=LiveOptions(seed=1))
    count_in = engine.start()
    assert [b.index for b in count_in.written] == [0, 1] and len(count_in.parts) == 2 * len(PARTS)
    for n, notes in enumerate(melody(6)):
        step = engine.play_bar(notes)
        assert step.played == n and [b.index for b in step.written] == [n + 2]  # the bar after next
        assert step.due == pytest.approx(2.0)  # 4/4 at 120: bar n + 1 lasts 2 s, then bar n + 2 is due
        assert step.margin > 0  # ready before it is due
        assert [p.bar for p in step.parts] == [n + 2] * len(PARTS)
        assert_on_grid(engine, step)
    assert engine.parts[0].register == program_register(0)
    assert sum(len(p.notes) for p in step.parts) > 0


def test_a_song_so_far_is_continued_in_its_metre_and_each_track_in_its_register(infiller, waltz):
    engine = LiveEngine(infiller, waltz, [1], player=0, options=LiveOptions(seed=2))
    first = len(song_grid(waltz))
    step = engine.start()
    assert [b.index for b in step.written] == [first, first + 1]
    assert engine.bar(first).numerator == 3 and engine.bar(first).start == first * 3 * TPQ
    assert engine.parts[0].register == (47, 56)  # the bass plays 48 and 55, one semitone of slack
    for notes in melody(3, quarters=3):
        assert_on_grid(engine, engine.play_bar(notes))


def test_controls_change_between_bars(infiller):
    engine = LiveEngine(infiller, None, [NewTrack(0), NewTrack(is_drum=True)], options=LiveOptions(seed=3))
    piano, drums = engine.parts
    engine.start()
    bars = melody(8)
    engine.play_bar(bars[0])
    engine.update(qpm=90.0, metre=(3, 4))
    engine.set_controls(engine.controls.with_part(piano.track, density=2, register=(60, 64)))
    step = engine.play_bar(bars[1])
    bar = step.written[0]
    assert (bar.numerator, bar.denominator, bar.qpm) == (3, 4, 90.0) and bar.start == engine.bar(2).end
    assert step.due == pytest.approx(2.0)  # the bar playing now was laid down before the change
    for notes in bars[2:4]:
        step = engine.play_bar(notes[:6])
        assert step.due == pytest.approx(2.0)  # a 3/4 bar at 90
        piano_bar = next(p for p in step.parts if p.track == piano.track)
        assert len(piano_bar.notes) <= 2 and all(60 <= n.pitch <= 64 for n in piano_bar.notes)
        assert_on_grid(engine, step)
    drum_bars = [p for p in step.parts if p.track == drums.track]
    engine.set_controls(engine.controls.with_part(drums.track, mute=True))
    for notes in bars[4:6]:
        drum_bars.append(next(p for p in engine.play_bar(notes[:6]).parts if p.track == drums.track))
    assert drum_bars[0].notes and not drum_bars[1].notes and not drum_bars[2].notes
    assert {s.time for s in engine.take.score.time_signatures} == {0, engine.bar(3).start}


def test_a_bar_is_encoded_as_the_whole_piece_encodes_it(tok, waltz, band):
    for score in (waltz, band):
        piece = tok.prepare(score)
        whole = tok.encode(piece)
        grid = song_grid(score)
        encoder = BarEncoder(tok, score.ticks_per_quarter)
        from midi_rwkv.live.bars import notes_in_bar

        for t, original in enumerate(piece.track_ids):
            track = score.tracks[original]
            for bar in grid:
                notes = notes_in_bar(track, bar, score.ticks_per_quarter)
                if not notes:
                    continue
                change = bar.index == 0 or bar.qpm != grid[bar.index - 1].qpm
                own = encoder.encode(bar, track.program, track.is_drum, notes, bar.qpm if change else None)
                span = piece.token_span(bar.index, bar.index + 1)
                assert list(own.bars) == [tuple(map(tuple, b)) for b in whole.bars[t][span[0]:span[1]]]


def test_the_window_is_anchored_and_hops():
    anchors, anchor = [], None
    for target in range(20):
        anchor = window_start(anchor, target, 8, 4)
        anchors.append(anchor)
    assert anchors == [0] * 9 + [4] * 4 + [8] * 4 + [12] * 3
    assert all(5 <= t - a <= 8 for t, a in enumerate(anchors) if t >= 8)


def test_shared_prompt_starts_are_read_once(infiller):
    def reads(prime: bool) -> tuple[int, int]:
        engine = LiveEngine(infiller, None, PARTS, options=LiveOptions(seed=4, prime=prime))
        engine.start()
        steps = [engine.play_bar(notes) for notes in melody(6)]
        return sum(s.prompt_tokens for s in steps), sum(s.tokens_read for s in steps)

    prompt, read = reads(True)
    assert read < 0.9 * prompt
    prompt, read = reads(False)
    assert read >= 0.98 * prompt


def test_candidates_fork_from_one_state(infiller):
    engine = LiveEngine(infiller, None, [NewTrack(0)], options=LiveOptions(seed=5, candidates=3, rank="likelihood"))
    engine.start()
    step = engine.play_bar(melody(1)[0])
    assert step.generated > len(step.parts[0].notes)  # three candidates were written, one plays
    assert_on_grid(engine, step)


def test_parts_must_be_different_tracks(infiller, waltz):
    from midi_rwkv.errors import MidiRwkvError

    with pytest.raises(MidiRwkvError, match="different tracks"):
        LiveEngine(infiller, waltz, [0], player=0)
    with pytest.raises(MidiRwkvError, match="does not exist"):
        LiveEngine(infiller, waltz, [5])
    with pytest.raises(MidiRwkvError, match="at least one part"):
        LiveEngine(infiller, waltz, [])


def repeating_song(bars: int = 8):
    """4/4: a melody (track 0) and a bass (track 1) that alternate two bars, A B A B ..."""
    from tests.conftest import make_score

    bar = 4 * TPQ
    melody_ab = [[60, 64, 67, 72], [62, 65, 69, 74]]
    bass_xy = [[36, 43, 36, 43], [38, 45, 38, 45]]
    melody_notes = [(b * bar + k * TPQ, TPQ, melody_ab[b % 2][k], 80) for b in range(bars) for k in range(4)]
    bass_notes = [(b * bar + k * TPQ, TPQ, bass_xy[b % 2][k], 70) for b in range(bars) for k in range(4)]
    return make_score([(0, 4, 4)], [(0, False, melody_notes), (33, False, bass_notes)])


@pytest.mark.parametrize("structure", ["follow", "off"])
def test_the_structure_setting_follows_the_bar_the_song_played_after_the_same_lead_in(infiller, structure):
    song = repeating_song()
    engine = LiveEngine(infiller, song, [1], player=0, options=LiveOptions(seed=6),
                        controls=LiveControls(structure=structure))
    step = engine.start()
    bass = [sorted((pitch, onset / TPQ) for onset, _, pitch, _ in engine.take.notes(1, b)) for b in (6, 7)]
    assert bass[0] != bass[1]
    written = [sorted((n.pitch, n.start) for n in p.notes) for p in step.parts]
    if structure == "follow":
        assert written == bass  # bar 8 is what bar 6 was (after the same A B lead-in), bar 9 what bar 7 was
        assert all(p.form.startswith("form: follows bar") for p in step.parts)
    else:
        assert written != bass and all(p.form is None for p in step.parts)


def test_live_settings_shared_with_infill_keep_infill_s_defaults_choices_and_words():
    import dataclasses

    from midi_rwkv.inference.options import RANKINGS, InfillOptions
    from midi_rwkv.live.options import LIVE_RANKINGS
    from midi_rwkv.settings import ConfigError

    infill = {f.name: f for f in dataclasses.fields(InfillOptions)}
    for f in dataclasses.fields(LiveOptions):
        if f.name in ("register", "strict_density", "seed"):
            assert f.default == infill[f.name].default
            assert f.metadata.get("choices") == infill[f.name].metadata.get("choices")
    assert set(LIVE_RANKINGS) <= set(RANKINGS) and LiveOptions().rank == InfillOptions().rank
    for seed in (-1, 2**63):
        with pytest.raises(ConfigError, match="'seed' must be 0 or more"):
            LiveOptions(seed=seed)
    assert LiveOptions(seed=2**63 - 1).seed == 2**63 - 1
