"""The song's structure on scores built in code with a known form: self-similarity, sources, sections, the command."""

from __future__ import annotations

import time

import numpy as np
import pytest

from midi_rwkv.cli import main
from midi_rwkv.errors import BarRangeError, TrackIndexError
from midi_rwkv.metrics.region import Notes, track_notes  # still importable where the metrics defined them
from midi_rwkv.structure.features import chroma, frames, grid_step, onset_grid, onset_grids, smooth
from midi_rwkv.structure.song import REPEAT_THRESHOLD, SongStructure, Source, has_repeat, song_bars
from midi_rwkv.tokenizer.metre import Bar
from tests.conftest import FIXTURES, TPQ, make_score

BAR = 4 * TPQ
# (bass, chord intervals) per bar. A is on white keys, B on black keys: their chroma never meets; C is minor chords
# on white keys. The chords' rhythms differ too (quarters, eighths, halves); the bass holds whole notes.
HARMONY = {
    "A": [(48, (0, 4, 7)), (53, (0, 4, 7)), (55, (0, 4, 7)), (48, (0, 4, 7))],
    "B": [(54, (0, 4, 7)), (51, (0, 3, 7)), (54, (0, 4, 7)), (51, (0, 3, 7))],
    "C": [(50, (0, 3, 7)), (52, (0, 3, 7)), (57, (0, 3, 7)), (50, (0, 3, 7))],
}
STEP = {"A": TPQ, "B": TPQ // 2, "C": 2 * TPQ}


def _bar_notes(bar: int, pitches: list[int], step: int, duration: int | None = None):
    return [(bar * BAR + t, duration or step, p, 80) for t in range(0, BAR, step) for p in pitches]


def song(form: str = "ABAB", melody_repeats: bool = False, drums: bool = False, phrase: int = 4):
    """A 4/4 song of ``phrase``-bar sections: bass and chords repeat exactly in sections with one letter; the melody
    (track 0) differs in every bar, unless ``melody_repeats``. ``drums``: a drum track whose A sections share their
    rhythm but not their instruments (kick, then another kick)."""
    melody, bass, chords, kit = [], [], [], []
    seen: dict[str, int] = {}
    for index, letter in enumerate(form):
        seen[letter] = seen.get(letter, 0) + 1
        for k in range(phrase):
            bar = index * phrase + k
            root, intervals = HARMONY[letter][k % 4]
            bass += _bar_notes(bar, [root], BAR)
            chords += _bar_notes(bar, [root + 12 + i for i in intervals], STEP[letter])
            variant = (0 if melody_repeats else seen[letter]) + 7 * k
            melody += [(bar * BAR + t, TPQ // 2, 72 + (variant * 5 + i) % 12, 90)
                       for i, t in enumerate(range(0, BAR, TPQ // 2 * (1 + variant % 2)))]
            instrument = 36 if seen[letter] == 1 else 35
            kit += _bar_notes(bar, [instrument], TPQ if letter == "A" else TPQ // 4)
    tracks = [(0, False, melody), (33, False, bass), (0, False, chords)] + ([(0, True, kit)] if drums else [])
    return make_score([(0, 4, 4)], tracks)


def bars_of(count: int) -> list[Bar]:
    return [Bar(i * BAR, (i + 1) * BAR, 4, 4) for i in range(count)]


@pytest.fixture(scope="module")
def abab() -> SongStructure:
    return SongStructure.of(song(), bars_of(16))


# --- features: the metrics' own, moved -------------------------------------------------------------------------------


def _chroma_one_frame_at_a_time(notes: Notes, cells) -> np.ndarray:
    """The metrics' chroma before the move, frame by frame."""
    out = np.zeros((len(cells), 12))
    for i, (start, end) in enumerate(cells):
        np.add.at(out[i], notes.sounding(start, end).pitch % 12, 1)
    return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-8)


def test_chroma_at_once_equals_frame_by_frame():
    rng = np.random.default_rng(0)
    notes = [(int(t), int(d), int(p), 80) for t, d, p in
             zip(rng.integers(0, 8 * BAR, 300), rng.integers(0, 3 * BAR, 300), rng.integers(30, 90, 300))]
    score = make_score([(0, 4, 4)], [(0, False, notes)])
    start = BAR + 3 * TPQ  # a 3/4 bar among 4/4 bars
    bars = [Bar(0, BAR, 4, 4), Bar(BAR, start, 3, 4)]
    bars += [Bar(start + i * BAR, start + (i + 1) * BAR, 4, 4) for i in range(5)]
    cells = frames(bars)
    notes = track_notes(score, 0)
    assert np.array_equal(chroma(notes, cells), _chroma_one_frame_at_a_time(notes, cells))
    assert np.array_equal(chroma(notes, cells[::-1]), _chroma_one_frame_at_a_time(notes, cells[::-1]))  # unordered
    grids, cells_per_bar = onset_grids(notes, bars, grid_step(TPQ))
    for i, bar in enumerate(bars):
        own = onset_grid(notes, bar.start, bar.end, grid_step(TPQ))
        assert cells_per_bar[i] == len(own) and np.array_equal(grids[i, : len(own)], own)
        assert not grids[i, len(own) :].any()


def test_smoothing_a_stack_of_bars_smooths_each_bar_alone():
    x = np.random.default_rng(1).random((3, 16, 12))
    assert np.array_equal(smooth(x), np.stack([smooth(bar) for bar in x]))


# --- self-similarity -------------------------------------------------------------------------------------------------


def test_exact_repeats_score_one_and_disjoint_harmony_scores_low(abab):
    assert abab.num_bars == 16 and abab.num_tracks == 3
    for track in (1, 2):
        sim = abab.similarity(track)
        assert sim.shape == (16, 16) and np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 1)
        assert 0 <= sim.min() and sim.max() <= 1 + 1e-9
        assert np.allclose(np.diag(sim, 8), 1)  # A with A, B with B
        assert abab.chroma(track)[0, 4] == pytest.approx(0, abs=1e-9)  # A against B: no common pitch class
    assert abab.rhythm(2)[0, 4] < 1 and abab.rhythm(1)[0, 4] == 1  # chords change rhythm, the bass does not
    combined = abab.combined()
    assert np.allclose(combined, np.mean([abab.similarity(t) for t in range(3)], axis=0))
    assert np.allclose(abab.combined(exclude=0), (abab.similarity(1) + abab.similarity(2)) / 2)


def test_silent_bars_are_alike_and_a_bar_silent_in_one_is_not():
    score = make_score([(0, 4, 4)], [(0, False, _bar_notes(0, [60], TPQ) + _bar_notes(3, [60], TPQ))])
    sim = SongStructure.of(score, bars_of(4)).chroma(0)
    assert sim[1, 2] == 1 and sim[0, 3] == pytest.approx(1) and sim[0, 1] == 0


# --- sources ---------------------------------------------------------------------------------------------------------


def test_sources_find_the_repeat_first_with_match_one(abab):
    sources = abab.sources(0, (8, 12))
    assert sources[0].start == 0 and sources[0].match == pytest.approx(1) and sources[0].distance == 8
    assert sources[0].target_notes == len(track_notes(song(), 0).onset_in(0, 4 * BAR)) > 0  # it plays, differently
    assert all(s.match < sources[0].match - 0.2 for s in sources[1:])
    assert has_repeat(sources) and sources[0].match >= REPEAT_THRESHOLD
    assert abab.sources(0, (4, 8))[0].start == 12
    everything = abab.sources(0, (9, 11), k=None)
    assert len(everything) == 15 - 3 and all(s.start + 2 <= 9 or s.start >= 11 for s in everything)  # no overlap
    assert [s.match for s in everything] == sorted((s.match for s in everything), reverse=True)
    assert everything[0] == Source(1, pytest.approx(1), everything[0].target_notes, 8)


def test_a_window_between_repeats_is_ranked_by_distance_on_ties():
    structure = SongStructure.of(song("AAAA"), bars_of(16))
    assert [s.start for s in structure.sources(0, (8, 12), k=3)] == [4, 12, 0]  # equal matches: the nearer first


def test_a_track_silent_in_both_bars_does_not_count_and_silent_in_one_counts_zero():
    plays_in_first = _bar_notes(0, [48], BAR) + _bar_notes(1, [53], BAR)
    melody = [(b * BAR, BAR, 72 + b, 80) for b in range(8)]
    only_other = make_score([(0, 4, 4)], [(0, False, melody), (0, False, plays_in_first)])
    # the span's other track is silent: windows where it is silent too have nothing to match on
    assert all(s.match == 0 for s in SongStructure.of(only_other, bars_of(8)).sources(0, (4, 6), k=None))
    # track 1 repeats exactly (1); track 2 plays in the span only (0 in one, not counted where silent in both)
    copy = plays_in_first + _bar_notes(4, [48], BAR) + _bar_notes(5, [53], BAR)
    span_only = _bar_notes(4, [60], TPQ) + _bar_notes(5, [62], TPQ)
    score = make_score([(0, 4, 4)], [(0, False, melody), (0, False, copy), (0, False, span_only)])
    structure = SongStructure.of(score, bars_of(8))
    best = structure.sources(0, (4, 6))[0]
    assert best.start == 0 and best.match == pytest.approx(0.5)
    assert structure.bar_match(0, (4, 6), 0) == pytest.approx([0.5, 0.5])
    assert structure.bar_match(0, (4, 6), 6) == pytest.approx([0, 0])  # both tracks silent in the window only


def test_drums_are_matched_by_rhythm():
    structure = SongStructure.of(song(drums=True), bars_of(16))
    assert structure.chroma(3)[0, 8] == 0  # another drum in the repeat
    assert structure.matching(3)[0, 8] == 1 and np.array_equal(structure.similarity(3), structure.rhythm(3))
    best = structure.sources(0, (8, 12))[0]
    assert (best.start, best.match) == (0, pytest.approx(1))


def test_no_other_track_or_no_room_gives_no_sources():
    melody_only = make_score([(0, 4, 4)], [(0, False, [n for b in range(8) for n in _bar_notes(b, [60 + b], TPQ)])])
    assert SongStructure.of(melody_only, bars_of(8)).sources(0, (2, 4)) == []
    structure = SongStructure.of(song("A"), bars_of(4))
    assert structure.sources(0, (0, 4)) == [] and structure.sources(0, (1, 3)) == []  # 1-2 bars on a side: too short
    assert [s.start for s in structure.sources(0, (0, 2), k=None)] == [2]
    assert not has_repeat([])


@pytest.mark.parametrize(
    "track, span, error", [(3, (0, 4), TrackIndexError), (0, (14, 17), BarRangeError), (0, (5, 5), BarRangeError)],
    ids=["track", "bars-outside", "empty-span"],
)
def test_sources_reject_what_the_song_does_not_have(abab, track, span, error):
    with pytest.raises(error):
        abab.sources(track, span)


def test_of_piece_and_of_score_take_the_real_bars(tok):
    score = song()
    piece = tok.prepare(score)
    assert len(song_bars(score)) == piece.num_bars
    assert np.array_equal(SongStructure.of_piece(piece).combined(), SongStructure.of_score(score).combined())


# --- sections --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["ABAB", "AABA", "ABCAB"])
def test_sections_follow_the_form(form):
    structure = SongStructure.of(song(form, melody_repeats=True), bars_of(4 * len(form)))
    sections = structure.sections()
    assert [(s.start, s.end) for s in sections] == [(4 * i, 4 * i + 4) for i in range(len(form))]
    assert "".join(s.label for s in sections) == form


def test_a_hundred_bars_of_three_tracks_take_well_under_a_second():
    score = song("ABACABAB" * 3 + "A", melody_repeats=False)
    bars = bars_of(100)
    begin = time.perf_counter()
    structure = SongStructure.of(score, bars)
    structure.sections()
    structure.sources(0, (40, 44))
    assert time.perf_counter() - begin < 0.5


# --- the command -----------------------------------------------------------------------------------------------------


@pytest.fixture
def abab_file(tmp_path):
    path = tmp_path / "abab.mid"
    song(melody_repeats=True).dump_midi(str(path))
    return path


def test_command_prints_sections_and_sources_and_draws(abab_file, tmp_path, capsys):
    png = tmp_path / "plot" / "s.png"
    assert main(["structure", str(abab_file), "--track", "0", "--bars", "9:12", "-k", "3", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "16 bars" in out and "bars 1-4" in out and "bars 13-16" in out
    assert [line.split()[0] for line in out.splitlines() if "bars" in line and "(4 bars)" in line] == list("ABAB")
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit() and "bars" in line]
    assert rows[0][:3] == ["1", "1-4", "1.000"] and len(rows) == 3
    assert "a repeat" in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_on_a_song_too_short_says_so(tmp_path, capsys):
    path = tmp_path / "short.mid"
    song("A").dump_midi(str(path))
    assert main(["structure", str(path), "--track", "1", "--bars", "1:4"]) == 0
    assert "no source" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["structure", str(FIXTURES / "corrupt_truncated.mid")], "not a readable MIDI file"),
        (["structure", str(FIXTURES / "no_notes.mid")], "has no notes"),
        (["structure", "ABAB", "--track", "7", "--bars", "1:2"], "track 7 does not exist"),
        (["structure", "ABAB", "--track", "0", "--bars", "15:18"], "outside the piece"),
        (["structure", "ABAB", "--track", "0", "--bars", "4:2"], "FIRST <= LAST"),
        (["structure", "ABAB", "--bars", "1:2"], "--bars needs --track"),
        (["structure", "ABAB", "-k", "0"], "-k must be"),
    ],
    ids=["corrupt", "no-notes", "track", "bars-outside", "bars-reversed", "bars-without-track", "k"],
)
def test_command_bad_input_gives_one_error_line_and_exit_2(abab_file, capsys, args, message):
    argv = [str(abab_file) if a == "ABAB" else a for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("midi-rwkv: error:") and message in err
