import pytest

from midi_rwkv.errors import ControlError, SequenceTooLongError
from midi_rwkv.tokenizer import BarControls
from tests.conftest import TPQ, make_score


def _names(tok, ids):
    return [tok.codec.vocab.tokens[i] for i in tok.codec.decode(ids)]


def test_bar_infill_structure(tok, waltz):
    piece = tok.prepare(waltz)
    seq = tok.bar_infill(piece, 0, (2, 5))
    names = _names(tok, seq.ids)
    assert names.count("Track_Start") == names.count("Track_End") == 2
    assert names.count("Infill_Bar") == 3
    assert names.count("FillBar_Start") == 1 and names[-1] == "FillBar_End"
    section = names[names.index("FillBar_Start") + 1 : -1]
    assert section.count("Bar_None") == 3
    # the prompt ends with the first masked bar's header and its controls
    prompt = _names(tok, seq.prompt)
    assert prompt[-10:-8] == ["Bar_None", "TimeSig_3/4"]
    assert prompt[-8:] == BarControls(4, (1, 1), (False, False, False, True, False)).tokens()
    # Infill_Bar sits where bars 2..4 were in track 0
    first_track = names[: names.index("Track_End") + 1]
    assert first_track[: first_track.index("Infill_Bar")].count("Bar_None") == 2
    assert first_track[first_track.index("Infill_Bar") :].count("Bar_None") == 3  # bars 5, 6, 7


def test_target_is_the_original_bars(tok, waltz):
    piece = tok.prepare(waltz)
    seq = tok.bar_infill(piece, 0, (5, 7))
    target = _names(tok, seq.target)
    assert target.count("Pitch_60") > 0 and target[-1] == "FillBar_End"
    assert seq.prompt + seq.target == seq.ids


def test_generation_sequence_has_no_target(tok, waltz):
    seq = tok.bar_infill(tok.prepare(waltz), 1, (1, 3), with_target=False)
    assert seq.prompt == seq.ids and not seq.target


def test_window_keeps_the_section_whole(tok, chorale_path):
    piece = tok.prepare(chorale_path)
    full = tok.bar_infill(piece, 1, (4, 6))
    short = tok.bar_infill(piece, 1, (4, 6), max_len=300)
    assert len(full.ids) > 300 >= len(short.ids)
    assert short.window[0] <= 4 and short.window[1] >= 6
    assert short.target == full.target  # same section, same ids
    assert _names(tok, short.ids)[-1] == "FillBar_End"
    with pytest.raises(SequenceTooLongError):
        tok.bar_infill(piece, 1, (0, 8), max_len=100)


def test_context_bars_limit_the_window(tok, chorale_path):
    piece = tok.prepare(chorale_path)
    seq = tok.bar_infill(piece, 0, (5, 7), context_bars=2)
    assert seq.window == (piece.first_token_bar[3], piece.first_token_bar[9])


def test_section_bars_use_real_time_signatures(tok, jig, breve):
    assert "TimeSig_6/8" in _names(tok, tok.bar_infill(tok.prepare(jig), 0, (2, 3)).prompt)[-12:]
    breve_seq = tok.bar_infill(tok.prepare(breve), 0, (1, 2))  # one real 4/2 bar = two tokenizer bars
    assert breve_seq.token_bars == (2, 4)
    assert _names(tok, breve_seq.ids).count("Infill_Bar") == 2


def test_given_controls_are_used_and_checked(tok, waltz, band):
    piece = tok.prepare(waltz)
    wanted = [BarControls(7, (1, 2), (False, True, False, False, False))] * 2
    seq = tok.bar_infill(piece, 0, (2, 4), controls=wanted)
    assert "ACBarNoteDensity_7" in _names(tok, seq.prompt)
    with pytest.raises(ControlError, match="3 masked bars"):
        tok.bar_infill(piece, 0, (2, 5), controls=wanted)
    with pytest.raises(ControlError, match="drum"):
        tok.bar_infill(tok.prepare(band), 2, (0, 2), controls=wanted)
    drum_seq = tok.bar_infill(tok.prepare(band), 2, (0, 2), controls=[BarControls(3)] * 2)
    assert _names(tok, drum_seq.prompt)[-1] == "ACBarNoteDensity_3"


def test_track_infill_moves_the_track_to_the_end(tok, waltz):
    seq = tok.track_infill(tok.prepare(waltz), 0)
    names = _names(tok, seq.ids)
    infill = names.index("Infill_Track")
    assert names[infill + 1 : infill + 3] == ["Track_Start", "Program_0"]
    assert names[: infill].count("Program_0") == 0 and "Program_32" in names[:infill]
    prompt = _names(tok, seq.prompt)
    assert prompt[-1].startswith("ACTrackRepetition_") and prompt[infill + 3].startswith("ACTrackOnsetPolyphonyMin_")
    assert names[-1] == "Track_End" and names.count("Bar_None") == 16


def test_empty_context_tracks_are_left_out(tok):
    bar = 4 * TPQ
    melody = [(b * bar, TPQ, 60, 80) for b in range(8)]
    late = [(7 * bar, TPQ, 40, 80)]
    piece = tok.prepare(make_score([(0, 4, 4)], [(0, False, melody), (33, False, late)]))
    seq = tok.bar_infill(piece, 0, (1, 2), context_bars=1)
    assert _names(tok, seq.ids).count("Track_Start") == 1


def test_target_last_layout_writes_the_infilled_track_next_to_the_section(tok, band):
    piece = tok.prepare(band)
    plain = tok.bar_infill(piece, 0, (2, 4))
    last = tok.bar_infill(piece, 0, (2, 4), layout="target-last")
    names = _names(tok, last.prompt)
    tracks = [names[i + 1] for i, n in enumerate(names) if n == "Track_Start"]
    assert tracks[-1] == "Program_0" and tracks[0] != "Program_0"  # the piano (track 0) moved after the drums
    # the track just before FillBar_Start is the one with the Infill_Bar placeholders
    before_section = names[: names.index("FillBar_Start")]
    assert "Infill_Bar" in before_section[len(before_section) - before_section[::-1].index("Track_Start") - 1 :]
    # the same tokens and the same section: only the order of the context tracks differs
    assert sorted(last.ids) == sorted(plain.ids) and last.target == plain.target
    assert last.prompt_len == plain.prompt_len and last.window == plain.window
    generated = plain.target
    assert tok.merge(piece, last, generated)[0].tracks[0].notes == tok.merge(piece, plain, generated)[0].tracks[0].notes
