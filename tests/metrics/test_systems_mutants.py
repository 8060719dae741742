"""metrics/systems.py, checked closely enough to kill its mutants (docs/testing.md): the system specs, a system's
identity, and the reference rows on small scores built in code. No model runs."""

from __future__ import annotations

import hashlib
from dataclasses import fields

import pytest

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import STRUCTURE_SETTINGS, FollowSettings
from midi_rwkv.inference.ggml import ENGINES
from midi_rwkv.inference.options import RANKINGS, InfillOptions
from midi_rwkv.inference.sampler import SamplerConfig
from midi_rwkv.metrics.systems import (
    FOLLOW_KEYS,
    KEYS,
    REFERENCES,
    TRACK_REFERENCES,
    System,
    other_track_score,
    parse_system,
    reference_score,
    structure_source,
)
from midi_rwkv.tokenizer.sequences import LAYOUTS
from tests.conftest import TPQ, make_score, note_tuples

BAR = 4 * TPQ


def refused(text: str, message: str) -> None:
    """``text`` is refused with exactly ``message`` (after the system's own prefix)."""
    with pytest.raises(MidiRwkvError) as caught:
        parse_system(text, "m.pth")
    assert str(caught.value) == message


# ---- parse_system ----------------------------------------------------------------------------------------------------


def test_a_plain_name_gets_the_default_model_and_every_default():
    system = parse_system("a-b_9", "m.pth")
    assert system == System("a-b_9", model="m.pth")
    assert system.options == InfillOptions() and system.follow == FollowSettings() and system.sampler is None
    free = parse_system("x:,,free=1,", "m.pth")  # empty items skipped
    assert free == System("x", model="m.pth", options=InfillOptions(free=True))


def test_the_evaluation_s_defaults_fill_keys_the_text_leaves_out():
    assert parse_system("x", "m.pth", {"context": "8"}).options.context == 8
    assert parse_system("x:context=all", "m.pth", {"context": "8"}).options.context == "all"


@pytest.mark.parametrize("text", ["", ":free=1", "a b", "a.b", "a-b c", "a/b"])
def test_a_name_must_be_letters_digits_dashes_or_underscores(text):
    refused(text, f"system '{text}': the name must be letters, digits, - or _")


@pytest.mark.parametrize("name", sorted(set(REFERENCES) | set(TRACK_REFERENCES)))
def test_reference_names_are_reserved(name):
    refused(name, f"system name '{name}' is reserved for a reference row")


def test_items_must_be_key_value_and_keys_known():
    refused("x:free", "system 'x:free': 'free' is not key=value")
    keys = " ".join(KEYS)
    refused("x:temp=1", f"system 'x:temp=1': unknown key 'temp' (keys: {keys})")
    refused("x:free=1,bogus=2", f"system 'x:free=1,bogus=2': unknown key 'bogus' (keys: {keys})")
    refused("x:seed=3", f"system 'x:seed=3': unknown key 'seed' (keys: {keys})")  # the evaluation's --seed decides


def test_every_infill_setting_but_the_seed_is_a_key():
    names = {f.name for f in fields(InfillOptions)} - {"seed"}
    assert names <= set(KEYS) and {f.name for f in fields(SamplerConfig)} <= set(KEYS)


def test_sampler_keys_are_typed_and_checked():
    system = parse_system("x:temperature=0.5,top_k=7,top_p=0.5,epsilon=0,repetition_penalty=1.2", "m.pth")
    assert system.sampler == SamplerConfig(0.5, 7, 0.5, 0.0, 1.2)
    assert type(system.sampler.top_k) is int and type(system.sampler.temperature) is float
    assert parse_system("x", "m.pth").sampler is None
    refused("x:top_k=a", "system 'x:top_k=a': 'top_k' needs a whole number, got 'a'")
    refused("x:top_k=1.5", "system 'x:top_k=1.5': 'top_k' needs a whole number, got '1.5'")
    with pytest.raises(MidiRwkvError) as caught:
        parse_system("x:top_p=2", "m.pth")
    assert str(caught.value).startswith("system 'x:top_p=2': invalid sampler settings")


@pytest.mark.parametrize("key", ["free", "strict_density", "source_timing", "structure_tracks"])
def test_flags_read_1_true_yes_or_0_false_no_in_any_case(key):
    def flag(value):
        system = parse_system(f"x:{key}={value}", "m.pth")
        return getattr(system.options, key) if hasattr(system.options, key) else \
            getattr(system.follow, FOLLOW_KEYS[key])

    for value in ("1", "true", "TRUE", "yes", "Yes"):
        assert flag(value) is True
    for value in ("0", "false", "no", "NO"):
        assert flag(value) is False
    refused(f"x:{key}=2", f"system 'x:{key}=2': '{FOLLOW_KEYS.get(key, key)}' takes 1 or 0 (true or false), got '2'")


@pytest.mark.parametrize("key", ["model", "tokenizer", "state", "lora"])
def test_files_are_taken_as_given(key):
    assert getattr(parse_system(f"x:{key}=dir/f.x", "m.pth"), key) == "dir/f.x"
    assert getattr(parse_system(f"x:{key}=a=b.x", "m.pth"), key) == "a=b.x"  # split at the first '='


def test_n_is_a_number_of_candidates_from_1_to_16():
    assert parse_system("x:n=1", "m.pth").options.n == 1
    n16 = parse_system("x:n=16", "m.pth").options.n
    assert n16 == 16 and type(n16) is int
    for value in ("0", "17", "-1"):
        refused(f"x:n={value}", f"system 'x:n={value}': 'n' must be a number of candidates from 1 to 16")
    for value in ("a", ""):
        refused(f"x:n={value}", f"system 'x:n={value}': 'n' needs a whole number, got '{value}'")


def test_a_system_generates_its_first_candidate_alone_unless_it_ranks_them():
    assert parse_system("x:n=4", "m.pth").candidates == 1
    assert parse_system("x:n=4,rank=controls", "m.pth").candidates == 4


def test_register_rank_layout_and_engine_take_their_choices_only():
    assert parse_system("x:register=free", "m.pth").options.register == "free"
    assert parse_system("x:register=keep", "m.pth").options.register == "keep"
    refused("x:register=wide", "system 'x:register=wide': 'register' must be one of keep, free, got 'wide'")
    for rank in RANKINGS:
        assert parse_system(f"x:rank={rank}", "m.pth").options.rank == rank
    refused("x:rank=best", f"system 'x:rank=best': 'rank' must be one of {', '.join(RANKINGS)}, got 'best'")
    for layout in LAYOUTS:
        assert parse_system(f"x:layout={layout}", "m.pth").layout == layout
    refused("x:layout=z", f"system 'x:layout=z': layout must be one of {', '.join(LAYOUTS)}")
    for engine in ("auto", *ENGINES):
        assert parse_system(f"x:engine={engine}", "m.pth").options.engine == engine
    choices = ", ".join(("auto", *ENGINES))
    refused("x:engine=onnx", f"system 'x:engine=onnx': 'engine' must be one of {choices}, got 'onnx'")


def test_context_is_bars_or_all_and_context_tokens_a_number():
    assert parse_system("x:context=4", "m.pth").options.context == 4
    assert parse_system("x:context=all", "m.pth").options.context == "all"
    assert parse_system("x:context_tokens=512", "m.pth").options.context_tokens == 512
    refused("x:context=some", "system 'x:context=some': context 'some': expected a number of bars or 'all'")
    refused("x:context_tokens=all", "system 'x:context_tokens=all': 'context_tokens' needs a whole number, got 'all'")
    refused("x:context_tokens=-3", "system 'x:context_tokens=-3': 'context_tokens' must be 1 or more")


def test_structure_takes_its_settings_or_1_and_0():
    for setting in STRUCTURE_SETTINGS:
        assert parse_system(f"x:structure={setting}", "m.pth").options.structure == setting
    assert parse_system("x:structure=1", "m.pth").options.structure == "follow"
    assert parse_system("x:structure=0", "m.pth").options.structure == "off"
    choices = ", ".join(STRUCTURE_SETTINGS)
    refused("x:structure=2", f"system 'x:structure=2': 'structure' must be one of {choices}, got '2'")


@pytest.mark.parametrize("key", ["structure_weight", "structure_floor", "structure_durations"])
def test_follow_numbers_are_floats_and_checked(key):
    assert getattr(parse_system(f"x:{key}=0.5", "m.pth").follow, FOLLOW_KEYS[key]) == 0.5
    refused(f"x:{key}=half", f"system 'x:{key}=half': '{FOLLOW_KEYS[key]}' needs a number, got 'half'")


def test_follow_settings_are_checked_when_the_system_is_made():
    system = parse_system("x:structure_weight=0.25,structure_floor=0.5,source_timing=0,structure_durations=0.7,"
                          "structure_tracks=1", "m.pth")
    assert (system.follow.weight, system.follow.floor, system.follow.source_timing, system.follow.durations_below,
            system.follow.tracks) == (0.25, 0.5, False, 0.7, True)
    with pytest.raises(MidiRwkvError) as caught:
        parse_system("x:structure_weight=2", "m.pth")
    assert str(caught.value).startswith("system 'x:structure_weight=2': follow weight must be in [0, 1]")


# ---- System ----------------------------------------------------------------------------------------------------------


def test_to_dict_holds_every_setting_but_the_seed_and_the_sampler_as_a_dict():
    system = System("m", model="a.pth", sampler=SamplerConfig(temperature=0.5), options=InfillOptions(n=3))
    out = system.to_dict()
    assert out["sampler"] == vars(SamplerConfig(temperature=0.5)) and out["n"] == 3 and out["name"] == "m"
    assert set(out) == {"name", "sampler", *KEYS} - set(fields_of(SamplerConfig)) and out["model"] == "a.pth"
    assert System("m").to_dict()["sampler"] is None


def test_identity_holds_the_settings_and_the_first_12_hex_of_each_loaded_file(tmp_path):
    files = {}
    for key in ("model", "state"):
        files[key] = tmp_path / f"{key}.bin"
        files[key].write_bytes(key.encode())
    system = System("m", model=str(files["model"]), state=str(files["state"]), options=InfillOptions(n=2))
    identity = system.identity("bars")
    assert identity["sha256"] == {key: hashlib.sha256(key.encode()).hexdigest()[:12] for key in ("model", "state")}
    assert identity["n"] == 2 and identity["name"] == "m" and identity["sampler"] == vars(SamplerConfig())
    assert set(identity) == set(system.to_dict()) | {"sha256"}
    assert System("silence", options=InfillOptions(n=3)).identity("bars") == {"name": "silence"}


def fields_of(cls) -> list[str]:
    return [f.name for f in fields(cls)]


# ---- the references --------------------------------------------------------------------------------------------------


def _piece(tok, tracks, bars: int = 6):
    """A 4/4 piece of ``bars`` bars (a note in the last bar of track 0 keeps them all)."""
    score = make_score([(0, 4, 4)], tracks)
    piece = tok.prepare(score)
    assert piece.num_bars == bars
    return piece


def _two_tracks(tok):
    """Track 0: a quarter on each beat 1 of bars 0-5 (pitch 60 + bar) plus notes on the edges of bars 2-4; track 1:
    a whole note per bar."""
    melody = [(b * BAR, TPQ, 60 + b, 80) for b in range(6)]
    melody += [(2 * BAR - 1, 1, 50, 70), (4 * BAR - 1, 1, 51, 70), (2 * BAR + 3 * TPQ, TPQ, 52, 70)]
    return _piece(tok, [(0, False, melody), (32, False, [(b * BAR, BAR, 40, 70) for b in range(6)])])


def test_the_original_reference_is_an_untouched_copy(tok):
    piece = _two_tracks(tok)
    score = reference_score("original", piece, 0, (2, 4))
    assert score is not piece.original
    assert [note_tuples(t) for t in score.tracks] == [note_tuples(t) for t in piece.original.tracks]


def test_silence_empties_exactly_the_span(tok):
    piece = _two_tracks(tok)
    score = reference_score("silence", piece, 0, (2, 4))
    kept = [n for n in note_tuples(piece.original.tracks[0]) if not 2 * BAR <= n[0] < 4 * BAR]
    assert note_tuples(score.tracks[0]) == kept
    assert (2 * BAR - 1, 1, 50, 70) in kept and (4 * BAR, TPQ, 64, 80) in kept  # the notes on either side stay
    assert note_tuples(score.tracks[1]) == note_tuples(piece.original.tracks[1])
    assert note_tuples(piece.original.tracks[0]) != kept  # the piece itself is untouched


def test_copy_takes_the_bars_before_or_else_the_bars_after(tok):
    piece = _two_tracks(tok)
    score = reference_score("copy", piece, 0, (2, 3))  # one bar: bar 1 copied into bar 2
    assert note_tuples(score.tracks[0], 2 * BAR, 3 * BAR) == [(2 * BAR, TPQ, 61, 80), (3 * BAR - 1, 1, 50, 70)]
    score = reference_score("copy", piece, 0, (2, 4))  # bars 0-1 into 2-3
    assert note_tuples(score.tracks[0], 2 * BAR, 4 * BAR) == [(2 * BAR, TPQ, 60, 80), (3 * BAR, TPQ, 61, 80),
                                                               (4 * BAR - 1, 1, 50, 70)]
    assert note_tuples(score.tracks[0], 4 * BAR) == note_tuples(piece.original.tracks[0], 4 * BAR)
    score = reference_score("copy", piece, 0, (1, 3))  # nothing before: bars 3-4 into 1-2
    assert note_tuples(score.tracks[0], BAR, 3 * BAR) == [(BAR, TPQ, 63, 80), (2 * BAR - 1, 1, 51, 70),
                                                           (2 * BAR, TPQ, 64, 80)]
    score = reference_score("copy", piece, 0, (3, 6))  # the three before: bars 0-2 into 3-5
    assert note_tuples(score.tracks[0], 3 * BAR) == [(3 * BAR, TPQ, 60, 80), (4 * BAR, TPQ, 61, 80),
                                                     (5 * BAR - 1, 1, 50, 70), (5 * BAR, TPQ, 62, 80),
                                                     (5 * BAR + 3 * TPQ, TPQ, 52, 70)]
    score = reference_score("copy", piece, 0, (0, 3))  # nothing before: bars 3-5 (the last ones) into 0-2
    assert note_tuples(score.tracks[0], None, 3 * BAR) == [(0, TPQ, 63, 80), (BAR - 1, 1, 51, 70),
                                                           (BAR, TPQ, 64, 80), (2 * BAR, TPQ, 65, 80)]
    for bars, shown in (((1, 4), "2-4"), ((2, 5), "3-5")):  # nothing before, and bars 4-6 / 5-7 do not all exist
        with pytest.raises(MidiRwkvError) as caught:
            reference_score("copy", piece, 0, bars)
        assert str(caught.value) == f"{piece.name}: no 3 bars next to bars {shown} to copy"


def _song(tok):
    """8 bars; track 1 (chords) plays A A B B A A B B by pitch; track 0 (melody) follows it, with its own pitch per
    bar."""
    chords = {"A": (60, 64, 67), "B": (62, 65, 69)}
    form = "AABBAABB"
    harmony = [(b * BAR, BAR, p, 70) for b, part in enumerate(form) for p in chords[part]]
    melody = [(b * BAR, TPQ, 72 + b, 80) for b in range(8)]
    return _piece(tok, [(0, False, melody), (0, False, harmony)], bars=8)


def test_structure_copy_takes_the_window_whose_other_tracks_match_best(tok):
    piece = _song(tok)
    assert structure_source(piece, 0, (4, 6)) == 0  # A A again
    assert structure_source(piece, 0, (6, 8)) == 2  # B B
    score = reference_score("structure-copy", piece, 0, (6, 8))
    assert note_tuples(score.tracks[0], 6 * BAR) == [(6 * BAR, TPQ, 74, 80), (7 * BAR, TPQ, 75, 80)]
    lone = _piece(tok, [(0, False, [(b * BAR, TPQ, 60, 80) for b in range(6)])])
    with pytest.raises(MidiRwkvError) as caught:
        structure_source(lone, 0, (2, 4))
    assert str(caught.value) == (f"{lone.name}: no window elsewhere in the song with other tracks to match bars "
                                 "3-4 against")


def test_other_track_copies_the_best_matching_pitched_track_moved_by_octaves(tok):
    bar_pitches = [60, 62, 64, 65, 67, 69]
    target = [(b * BAR, TPQ, p, 80) for b, p in enumerate(bar_pitches)]  # median 64.5
    same_high = [(b * BAR, TPQ, p + 24, 81) for b, p in enumerate(bar_pitches)]  # the same line 2 octaves up
    other = [(b * BAR + TPQ, TPQ, 50, 82) for b in range(6)]  # another rhythm, another pitch
    drums = [(b * BAR, TPQ, 36, 100) for b in range(6)]
    piece = _piece(tok, [(0, False, other), (0, False, target), (0, True, drums), (0, False, []),
                         (0, False, same_high)])
    score = other_track_score(piece, 1)
    assert note_tuples(score.tracks[1]) == [(t, d, p - 24, 81) for t, d, p, _ in same_high]
    for i in (0, 2, 3, 4):
        assert note_tuples(score.tracks[i]) == note_tuples(piece.original.tracks[i])
    assert reference_score("other-track", piece, 1, (0, 6)).tracks[1].notes == score.tracks[1].notes
    # the first of two equal matches is kept (content preservation ignores velocities)
    louder = [(t, d, p, 90) for t, d, p, _ in same_high]
    piece = _piece(tok, [(0, False, target), (0, False, same_high), (0, False, louder)])
    assert note_tuples(other_track_score(piece, 0).tracks[0]) == [(t, d, p - 24, 81) for t, d, p, _ in same_high]


def test_other_track_clamps_pitches_and_copies_drums_unmoved(tok):
    low = [(b * BAR, TPQ, 2 + b, 80) for b in range(6)]
    high = [(b * BAR, TPQ, 120 + b, 81) for b in range(6)]
    middle = [(b * BAR + TPQ, TPQ // 2, 66, 80) for b in range(6)]  # for the tokenizer; another rhythm
    piece = _piece(tok, [(0, False, low), (0, False, high), (0, False, middle)])
    moved = [n[2] for n in note_tuples(other_track_score(piece, 0).tracks[0])]  # 12 * round(-118 / 12) = -120
    assert moved == [0, 1, 2, 3, 4, 5]
    moved = [n[2] for n in note_tuples(other_track_score(piece, 1).tracks[1])]  # + 120: over 127 clamped
    assert moved == [122, 123, 124, 125, 126, 127]
    top = [(b * BAR, TPQ, 125, 81) for b in range(6)]
    piece = _piece(tok, [(0, False, [(b * BAR, TPQ, 5 + b, 80) for b in range(6)]), (0, False, top),
                         (0, False, middle)])
    moved = [n[2] for n in note_tuples(other_track_score(piece, 1).tracks[1])]  # 12 * round(117.5 / 12) = 120
    assert moved == [125, 126, 127, 127, 127, 127]
    kick = [(b * BAR, TPQ, 36, 100) for b in range(6)]
    snare = [(b * BAR, TPQ, 38, 90) for b in range(6)]
    piece = _piece(tok, [(0, True, kick), (0, False, low), (0, True, snare)])
    assert note_tuples(other_track_score(piece, 0).tracks[0]) == snare
    empty = _piece(tok, [(0, False, []), (0, False, high), (0, False, middle)])
    assert note_tuples(other_track_score(empty, 0).tracks[0]) in (high, middle)  # no register to move to


def test_other_track_needs_another_track_of_its_kind(tok):
    notes = [(b * BAR, TPQ, 60, 80) for b in range(6)]
    piece = _piece(tok, [(0, False, notes), (0, True, notes), (0, False, [])])
    with pytest.raises(MidiRwkvError) as caught:
        other_track_score(piece, 0)
    assert str(caught.value) == f"{piece.name}: no other pitched track to copy"
    with pytest.raises(MidiRwkvError) as caught:
        other_track_score(piece, 1)
    assert str(caught.value) == f"{piece.name}: no other drum track to copy"
