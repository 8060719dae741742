"""data/compile.py, checked closely enough to kill its mutants (docs/testing.md): ``compile_piece`` on small scores
built in code (the prefilter's edges, the rows of each kind of track, the skip reasons), and the arrays of a shard as
``midi_rwkv.data.compiled`` documents them (types, shift rows), for a shard with pieces and for one without."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from midi_rwkv.data import compile as compile_module
from midi_rwkv.data.compile import (
    MAX_SHIFT,
    compile_piece,
    compile_source,
    representable,
    shard_name,
    source_signature,
)
from midi_rwkv.data.compiled import ARRAYS, FORMAT, CompiledCorpus
from midi_rwkv.data.corpora import Corpus
from midi_rwkv.data.dataset import unlearned_ids
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.sequences import EncodedPiece
from tests.conftest import FIXTURES, TPQ, make_score

BAR = 4 * TPQ
SIXTEENTH = TPQ // 4

# The types the shard layout (midi_rwkv/data/compiled.py) gives each array; the others are int64.
DTYPES = {"words": np.uint16, "bar_len": np.uint16, "first_bar": np.int32, "track_program": np.int16,
          "track_drum": np.bool_, "track_encoded": np.bool_, "track_low": np.int16, "track_high": np.int16,
          "stat_count": np.uint16, "stat_poly_min": np.int8, "stat_poly_max": np.int8, "stat_durations": np.uint8,
          "stat_pairs": np.uint16, "stat_repeats": np.int16}


def _spread(notes: int, bars: int, pitch: int = 60, bass: bool = True):
    """A 4/4 score of ``bars`` bars with ``notes`` notes: a whole note of bass per bar (if ``bass``), the rest a
    melody on distinct sixteenths spread over the bars (the last onset in the last bar)."""
    melody_count = notes - (bars if bass else 0)
    slots = bars * 16
    melody = [((i * slots // melody_count) * SIXTEENTH, SIXTEENTH, pitch + i % 5, 80) for i in range(melody_count)]
    melody[-1] = ((slots - 1) * SIXTEENTH, SIXTEENTH, pitch, 80)
    tracks = [(0, False, melody)]
    if bass:
        tracks.append((33, False, [(b * BAR, BAR, 40, 70) for b in range(bars)]))
    return make_score([(0, 4, 4)], tracks)


def test_the_prefilter_keeps_more_than_100_notes_and_at_least_8_bars_by_default(tok):
    assert "skip" not in compile_piece(_spread(101, 8), tok, "a.mid")
    assert compile_piece(_spread(100, 8), tok, "a.mid") == {"skip": "too few notes: 100 <= 100"}
    assert compile_piece(_spread(101, 7), tok, "a.mid") == {"skip": "too few bars: 7 < 8"}
    compiled = compile_piece(_spread(101, 8), tok, "a.mid")
    assert len(compiled["first_token_bar"]) == 9 and len(compiled["headers"]) == 8


def test_a_piece_the_tokenizer_refuses_is_skipped_with_its_error_and_name(tok):
    score = _spread(101, 8, pitch=115, bass=False)  # every note above the vocabulary's Pitch_108
    assert compile_piece(score, tok, "odd.mid") == {"skip": "EmptyScoreError: odd.mid: the file has no notes"}


def test_a_piece_of_one_track_compiles_with_its_own_bar_headers(tok):
    compiled = compile_piece(_spread(101, 8, bass=False), tok, "solo.mid")
    assert [t["index"] for t in compiled["tracks"]] == [0] and len(compiled["headers"]) == 8


def test_every_played_track_gets_a_row_after_an_empty_one_and_one_the_vocabulary_lacks_spans_no_bars(tok):
    score = _spread(101, 8)
    melody, bass = (list(score.tracks[i].notes) for i in range(2))
    score = make_score([(0, 4, 4)], [
        (0, False, [(n.time, n.duration, n.pitch, n.velocity) for n in melody]),
        (5, False, []),
        (127, False, [(0, TPQ, 60, 50)]),
        (33, False, [(n.time, n.duration, n.pitch, n.velocity) for n in bass]),
    ])
    rows = compile_piece(score, tok, "band.mid", min_notes=10)["tracks"]
    assert [(r["index"], r["program"], r["encoded"], r["bars"]) for r in rows] == [
        (0, 0, True, 8), (2, 127, False, 0), (3, 33, True, 8)]


def test_a_track_holding_the_last_onset_spans_all_bars_at_a_fine_resolution(tok):
    tpq = 960  # prepare_piece's grace (tpq / 24 ticks, rounded up) is 40 ticks here
    bar = 4 * tpq
    notes = [(b * bar + k * tpq, tpq, 60 + k, 80) for b in range(8) for k in range(4)]
    notes.append((8 * bar - 40, 40, 72, 80))  # quantised onto bar 9's first tick
    score = make_score([(0, 4, 4)], [(0, False, notes)], tpq=tpq)
    compiled = compile_piece(score, tok, "fine.mid", min_bars=1, min_notes=10)
    assert len(compiled["first_token_bar"]) - 1 == 9
    assert compiled["tracks"][0]["bars"] == 9


def test_token_and_note_counts_that_disagree_stop_the_compile_naming_the_piece_and_track(tok, monkeypatch):
    statistics = EncodedPiece.statistics

    def off_by_one(self, track):
        stats = statistics(self, track)
        return dataclasses.replace(stats, count=stats.count + 1)

    monkeypatch.setattr(EncodedPiece, "statistics", off_by_one)
    with pytest.raises(RuntimeError, match=r"^a\.mid: track 0: note counts of tokens and of notes disagree$"):
        compile_piece(_spread(101, 8), tok, "a.mid")


def _band():
    """8 bars: a melody near the top of its range (some upward shifts not allowed), drums, a bass."""
    melody = [(b * BAR + k * TPQ, TPQ, 100 + k, 80) for b in range(8) for k in range(4)]
    drums = [(b * BAR + k * TPQ, TPQ // 2, 36 + k % 2, 90) for b in range(8) for k in range(4)]
    bass = [(b * BAR, BAR, 40, 70) for b in range(8)]
    return make_score([(0, 4, 4)], [(0, False, melody), (0, True, drums), (33, False, bass)])


@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    folder, out = tmp_path_factory.mktemp("band"), tmp_path_factory.mktemp("out")
    _band().dump_midi(folder / "band.mid")
    base = tmp_path_factory.mktemp("tok") / "base.json"
    InfillTokenizer().save(base)
    spec = f"folder:{folder}"
    return compile_source(spec, base, out, progress=False, min_bars=4, min_notes=10), folder


def test_a_shard_s_arrays_have_the_documented_types_and_a_shift_row_per_shift(shard, tok):
    folder, source = shard
    arrays = {name: np.load(folder / f"{name}.npy") for name in ARRAYS}
    assert {n: a.dtype for n, a in arrays.items()} == {n: np.dtype(DTYPES.get(n, np.int64)) for n in ARRAYS}
    assert list(arrays["track_index"]) == [0, 1, 2] and list(arrays["track_shift"]) == [0, 13, 26]
    assert arrays["shift_row"].shape == (3 * (2 * MAX_SHIFT + 1),)
    melody, drums, bass = arrays["shift_row"].reshape(3, 2 * MAX_SHIFT + 1)
    high = int(arrays["track_high"][0])
    assert 0 <= high < MAX_SHIFT
    assert all(r >= 0 for r in melody[: MAX_SHIFT + high + 1]) and all(r == -1 for r in melody[MAX_SHIFT + high + 1:])
    assert list(drums != -1) == [s == 0 for s in range(-MAX_SHIFT, MAX_SHIFT + 1)] and all(bass >= 0)
    score = representable(_band(), tok)
    piece = tok.prepare(score, "band.mid")
    corpus = CompiledCorpus(folder)
    (compiled,) = corpus.shards
    assert compiled.piece_facts(0)["bars"] == piece.num_bars == 8
    with pytest.raises(MidiRwkvError, match="track 0 cannot be shifted by"):
        compiled.encode(0, [0, 1, 2], high + 1)
    assert compiled.encode(0, [0, 1, 2], high).piece.track_ids == [0, 1, 2]


def test_a_shard_whose_every_piece_is_skipped_has_empty_arrays_of_the_documented_types(tmp_path):
    folder, out = tmp_path / "pieces", tmp_path / "out"
    folder.mkdir()
    _spread(20, 8).dump_midi(folder / "short.mid")
    base = tmp_path / "base.json"
    InfillTokenizer().save(base)
    shard = compile_source(f"folder:{folder}", base, out, progress=False)
    assert shard == out / shard_name(f"folder:{folder}")
    meta = json.loads((shard / "meta.json").read_text())
    assert meta["pieces"] == [] and list(meta["skipped"].values()) == ["too few notes: 20 <= 100"]
    arrays = {name: np.load(shard / f"{name}.npy") for name in ARRAYS}
    assert {n: a.dtype for n, a in arrays.items()} == {n: np.dtype(DTYPES.get(n, np.int64)) for n in ARRAYS}
    assert {n: a.shape for n, a in arrays.items()} == {n: (0, 3) if n == "stat_repeats" else (0,) for n in ARRAYS}


def test_representable_drops_only_the_pitches_outside_each_kind_of_track_s_range(tok):
    low, high = tok.miditok.config.pitch_range  # 21..108
    drum_low, drum_high = tok.miditok.config.drums_pitch_range  # 27..87
    pitches = {
        "melodic, some out": [low - 1, low, 60, high, high + 1],
        "melodic, all in": [low, 100, high],
        "drums, some out": [drum_low - 1, drum_low, 60, drum_high, drum_high + 1, 100],
    }
    score = make_score([(0, 4, 4)], [
        (program, drum, [(k * TPQ, TPQ, p, 80) for k, p in enumerate(ps)])
        for (program, drum), ps in zip([(0, False), (5, False), (0, True)], pitches.values())
    ])
    clean = representable(score, tok)
    assert [[n.pitch for n in t.notes] for t in clean.tracks] == [
        [low, 60, high], [low, 100, high], [drum_low, 60, drum_high]]
    assert [n.pitch for n in score.tracks[0].notes] == pitches["melodic, some out"]  # a copy: the score is kept


class _Files(Corpus):
    name = label = "files"

    def __init__(self, files):
        self.files = list(files)
        super().__init__([f.name for f in self.files])


class _Paths(Corpus):
    name = label = "paths"

    def __init__(self, files):
        self._files = list(files)
        super().__init__([f.name for f in self._files])

    def path(self, index):
        return self._files[index]


class _Rows(Corpus):  # pieces in a table (as GigaMIDI): no file to look at
    name = label = "rows"


def test_a_source_signature_follows_its_ids_and_the_size_and_time_of_its_files(tmp_path):
    files = [tmp_path / "a.mid", tmp_path / "b.mid"]
    for kind in (_Files, _Paths):
        for f in files:
            f.write_bytes(b"1234")
        before = source_signature(kind(files))
        assert source_signature(kind(files)) == before
        stat = files[1].stat()
        os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        touched = source_signature(kind(files))
        files[1].write_bytes(b"12345")
        os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert len({before, touched, source_signature(kind(files))}) == 3, kind
    rows = source_signature(_Rows(["x", "y"]))
    assert rows == source_signature(_Rows(["x", "y"])) != source_signature(_Rows(["x", "z"]))


@pytest.mark.parametrize("spec, name", [
    ("folder:/data/midi/pieces", "folder-pieces"),
    ("pop909+versions:/data/POP909", "pop909+versions-POP909"),
    ("gigamidi:org/set::drums only", "gigamidi-set"),
    ("gigamidi", "gigamidi-gigamidi"),
    ("data/midi", "data_midi-data_midi"),
], ids=["folder", "pop909", "gigamidi-subset", "no-path", "bare-folder"])
def test_shard_names(spec, name):
    assert shard_name(spec) == name


class _Pool(ProcessPoolExecutor):
    """A process pool that records how it was made and mapped."""

    made: list = []

    def __init__(self, *args, **kwargs):
        _Pool.made.append((args, kwargs))
        super().__init__(*args, **kwargs)

    def map(self, fn, *iterables, **kwargs):
        _Pool.made.append((fn, kwargs))
        return super().map(fn, *iterables, **kwargs)


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setattr(compile_module, "_WORKER", {})  # nothing left over from an earlier compile
    monkeypatch.setattr(compile_module, "ProcessPoolExecutor", _Pool)
    monkeypatch.setattr(_Pool, "made", [])
    return _Pool.made


@pytest.fixture
def pieces(tmp_path):
    """A folder of 4 files: unreadable, out of the vocabulary, short (20 notes), and one of 101 notes in 8 bars
    (named so that its split with the default seed is not "train")."""
    folder = tmp_path / "pieces"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "corrupt_not_midi.mid", folder / "a_bad.mid")
    _spread(101, 8, pitch=115, bass=False).dump_midi(folder / "b_odd.mid")
    _spread(20, 8).dump_midi(folder / "c_short.mid")
    _spread(101, 8).dump_midi(folder / "piece37.mid")
    base = tmp_path / "base.json"
    InfillTokenizer().save(base)
    return folder, base


def test_a_compile_by_default_records_its_settings_each_piece_and_why_the_others_were_skipped(
        pieces, pool, tok, tmp_path, capsys):
    folder, base = pieces
    spec, out = f"folder:{folder}", tmp_path / "not" / "yet" / "there"
    shard = compile_source(spec, base, out)
    assert shard == out / "folder-pieces" and pool == []  # one process: no pool
    printed = capsys.readouterr()
    meta = json.loads((shard / "meta.json").read_text())
    tokens = compile_piece(Score(str(folder / "piece37.mid")), tok, "piece37.mid")["tokens"]
    assert meta["pieces"] == [{"id": "piece37.mid", "song": "piece37.mid", "tokens": tokens, "split": "validation"}]
    assert list(meta["skipped"]) == ["a_bad.mid", "b_odd.mid", "c_short.mid"]
    assert meta["skipped"]["a_bad.mid"].startswith(f"MidiFileError: {folder / 'a_bad.mid'}: not a readable MIDI file")
    assert meta["skipped"]["b_odd.mid"] == "EmptyScoreError: b_odd.mid: the file has no notes"
    assert meta["skipped"]["c_short.mid"] == "too few notes: 20 <= 100"
    arrays = {name: np.load(shard / f"{name}.npy") for name in ARRAYS}
    keys = ("format", "spec", "label", "max_shift", "seed", "min_bars", "min_notes", "tokens")
    assert {k: meta[k] for k in keys} == {
        "format": FORMAT, "spec": spec, "label": "folder", "max_shift": MAX_SHIFT, "seed": 0, "min_bars": 8,
        "min_notes": 100, "tokens": int(arrays["words"].size)}
    assert meta["unlearned_ids"] == sorted(unlearned_ids(tok)) and meta["vocab_size"] == tok.vocab_size
    assert (shard / "tokenizer.json").read_bytes() == base.read_bytes()
    assert (shard / "meta.json").stat().st_mode & 0o777 == 0o644 and shard.stat().st_mode & 0o777 == 0o755
    assert printed.out == f"{shard}: 1 pieces (3 skipped), {meta['tokens']:,} ids over all shifts\n"
    bar = printed.err.splitlines()[-1] if printed.err else ""
    assert bar.startswith("compile folder-pieces: 100%") and " 4/4 " in bar, printed.err
    assert "piece/s" in bar or "s/piece" in bar, bar
    compile_source(spec, base, out, progress=False)
    assert capsys.readouterr() == (f"{shard}: up to date\n", "")


def test_a_compile_uses_the_limits_it_is_given(pieces, pool, tmp_path, capsys):
    folder, base = pieces
    shard = compile_source(f"folder:{folder}", base, tmp_path / "out", progress=False, min_bars=4, min_notes=10,
                           max_shift=2, seed=1)
    assert capsys.readouterr().err == ""  # no progress bar
    meta = json.loads((shard / "meta.json").read_text())
    assert [p["id"] for p in meta["pieces"]] == ["c_short.mid", "piece37.mid"]
    assert [p["split"] for p in meta["pieces"]] == ["train", "train"]  # piece37 is "train" under seed 1
    assert (meta["seed"], meta["min_bars"], meta["min_notes"], meta["max_shift"]) == (1, 4, 10, 2)
    assert np.load(shard / "shift_row.npy").size == 4 * 5  # two pieces of two tracks, shifts -2..2


def test_workers_compile_the_same_shard_in_a_pool_of_that_many_processes(pieces, pool, tmp_path):
    folder, base = pieces
    spec = f"folder:{folder}"
    alone = compile_source(spec, base, tmp_path / "alone", progress=False, min_bars=4, min_notes=10)
    assert pool == []
    two = compile_source(spec, base, tmp_path / "two", workers=2, progress=False, min_bars=4, min_notes=10)
    assert pool == [((2,), {"initializer": compile_module._init, "initargs": (str(base), spec, (4, 10, MAX_SHIFT))}),
                    (compile_module._compile_one, {"chunksize": 4})]
    assert multiprocessing.active_children() == []  # the pool was shut down
    for name in ARRAYS:
        assert np.array_equal(np.load(alone / f"{name}.npy"), np.load(two / f"{name}.npy")), name
    metas = [json.loads((s / "meta.json").read_text()) for s in (alone, two)]
    assert metas[0]["pieces"] == metas[1]["pieces"] and metas[0]["skipped"] == metas[1]["skipped"]
    assert len(metas[0]["pieces"]) == 2


@pytest.mark.parametrize("max_shift", [-1, 7])
def test_a_shift_beyond_0_to_6_is_refused(pieces, tmp_path, max_shift):
    folder, base = pieces
    with pytest.raises(MidiRwkvError, match=r"^max_shift must be 0\.\.6$"):
        compile_source(f"folder:{folder}", base, tmp_path / "out", progress=False, max_shift=max_shift)


def test_a_shard_without_shifts(pieces, tmp_path):
    folder, base = pieces
    shard = compile_source(f"folder:{folder}", base, tmp_path / "out", progress=False, max_shift=0)
    assert list(np.load(shard / "shift_row.npy")) == [1, 2]  # piece37's two tracks, unshifted (row 0: its headers)


def test_a_shard_is_written_in_a_hidden_folder_beside_it_then_renamed(pieces, tmp_path, monkeypatch):
    folder, base = pieces
    out, seen, chmod = tmp_path / "out", [], os.chmod

    def spy(path, mode):
        seen.append((Path(path), sorted(p.name for p in out.iterdir())))
        chmod(path, mode)

    monkeypatch.setattr(os, "chmod", spy)
    shard = compile_source(f"folder:{folder}", base, out, progress=False)
    ((written, listing),) = seen
    assert written.parent == out and written.name.startswith(".folder-pieces.") and listing == [written.name]
    assert sorted(p.name for p in out.iterdir()) == [shard.name]


def test_an_interrupt_after_the_new_shard_is_in_place_is_reported_as_the_interrupt(pieces, tmp_path, monkeypatch):
    folder, base = pieces
    out = tmp_path / "out"
    shard = compile_source(f"folder:{folder}", base, out, progress=False)
    rmtree = shutil.rmtree

    def interrupted(path, *args, **kwargs):
        if Path(path).name.endswith(".old"):
            raise KeyboardInterrupt
        return rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compile_source(f"folder:{folder}", base, out, progress=False, force=True)
    assert (shard / "meta.json").is_file()
