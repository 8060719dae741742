"""The synthetic drum mix: Groove beats laid on a song's bars, tempo and metre matched, seeded, training songs only."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from midi_rwkv.data.build_corpus import DEFAULT_SOURCES, SOURCES, build
from midi_rwkv.data.corpora import FolderCorpus, open_corpus
from midi_rwkv.data.drum_mix import (
    DrumMixer,
    MixSettings,
    SkipSong,
    build_mix_drums,
    groove_bars,
    stretch,
)
from midi_rwkv.data.splits import SPLIT_RATIOS, split_of
from midi_rwkv.tokenizer.metre import Bar, real_bars
from tests.conftest import make_score
from tests.data.test_corpora import write_pop909

GROOVE_TPQ = 480
FIRST_PITCH = 36  # Groove bar k of a test beat plays pitch FIRST_PITCH + k: the bar it came from can be read back


def name_in(split: str, pattern: str, prefix: str = "folder/") -> str:
    """The first name ``pattern.format(i)`` whose corpus split (a hash of ``prefix + name``) is ``split``."""
    return next(n for n in (pattern.format(i) for i in range(1000))
                if split_of(prefix + n, 0, SPLIT_RATIOS) == split)


def groove_score(metre: tuple[int, int], bpm: float, bars: int, hits: int):
    """A Groove-like performance: ``hits`` evenly spaced hits a bar, bar k at pitch FIRST_PITCH + k, and a last
    hit on the downbeat after the last bar (as a performance ends)."""
    length = metre[0] * 4 * GROOVE_TPQ // metre[1]
    notes = [(k * length + i * length // hits, 30, FIRST_PITCH + k, 90) for k in range(bars) for i in range(hits)]
    notes.append((bars * length, 30, 49, 100))
    return make_score([(0, *metre)], [(0, True, notes)], tempos=((0, bpm),), tpq=GROOVE_TPQ)


def write_groove(root, beats):
    """A miniature Groove folder: info.csv and its files. ``beats``: (split, bpm, metre, kind) items."""
    lines = ["drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split"]
    paths = []
    for n, (split, bpm, metre, kind) in enumerate(beats):
        path = name_in(split, f"drummer1/s{n}/{{}}_rock_{bpm}_{kind}_{metre[0]}-{metre[1]}.mid")
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        groove_score(metre, bpm, 12, 8).dump_midi(root / path)
        lines.append(f"drummer1,drummer1/s{n},x,rock,{bpm},{kind},{metre[0]}-{metre[1]},{path},x.wav,10,train")
        paths.append(path)
    (root / "info.csv").write_text("\n".join(lines) + "\n")
    return paths


def song(metre: tuple[int, int], bars: int, qpm: float = 100.0, tpq: int = 220, first: int = 0):
    """A melody with a note on every beat of bars ``first``..``bars - 1`` (bars before it are silent)."""
    length = metre[0] * 4 * tpq // metre[1]
    notes = [(b * length + i * tpq, tpq, 60 + i, 80) for b in range(first, bars) for i in range(length // tpq)]
    return make_score([(0, *metre)], [(0, False, notes)], tempos=((0, qpm),), tpq=tpq)


def drums_by_bar(score, bars):
    notes = score.tracks[-1].notes.numpy()
    return [notes["pitch"][(notes["time"] >= b.start) & (notes["time"] < b.end)] for b in bars]


@pytest.fixture
def groove(tmp_path):
    root = tmp_path / "groove"
    beats = [("train", bpm, (4, 4), "beat") for bpm in (60, 95, 100, 105, 180)]
    beats += [("train", 100, (4, 4), "fill"), ("train", 100, (3, 4), "beat"), ("test", 100, (4, 4), "beat")]
    return root, write_groove(root, beats)


@pytest.mark.parametrize("parts", [1, 2], ids=["bar-on-bar", "bar-over-two"])
def test_every_hit_of_a_groove_bar_lands_inside_its_target_bar(parts):
    rng = np.random.default_rng(0)
    length = 1920
    notes = np.zeros(200, [("time", np.int64), ("duration", np.int64), ("pitch", np.int64), ("velocity", np.int64)])
    notes["time"] = np.sort(rng.integers(0, length, 200))
    notes["time"][[0, -1]] = 0, length - 1  # the edges too
    notes["duration"], notes["pitch"], notes["velocity"] = 60, 38, 90
    bar = Bar(1000, 1777, 2, 4)  # another resolution and tempo: 777 ticks
    placed = [stretch(notes, length, part, parts, bar) for part in range(parts)]
    assert sum(len(p) for p in placed) == len(notes)  # every hit lands in exactly one part
    for part, out in enumerate(placed):
        assert ((out["time"] >= bar.start) & (out["time"] < bar.end)).all()
        assert (np.diff(out["time"]) >= 0).all()  # order kept
        share = (notes["time"] * parts - part * length) / length  # where in its part each hit was, 0..1
        expected = bar.start + share[(share >= 0) & (share < 1)] * 777
        assert np.abs(out["time"] - expected).max() < 1  # linear
    assert placed[0]["time"][0] == bar.start


def test_the_drum_track_lands_on_the_songs_bar_grid(groove):
    root, _ = groove
    score = song((4, 4), 20, first=2)
    mixed, record = DrumMixer(root, MixSettings(loop_bars=3, section_bars=4)).mix(score, "folder/a.mid", "train")
    drums = mixed.tracks[record["drum_track"]]
    assert drums.is_drum and drums.program == 0 and len(mixed.tracks) == 2
    bars = real_bars(score, score.end())
    per_bar = drums_by_bar(mixed, bars)
    assert all(len(p) == 0 for p in per_bar[:2])  # silent bars before the song starts get no drums
    sections = {s["first_bar"]: s for s in record["sections"]}
    assert sorted(sections) == [2, 6, 10, 14, 18]  # sections of 4 Groove bars from the first bar with a note
    for index in range(2, 20):
        section = sections[max(s for s in sections if s <= index)]
        pitches = set(per_bar[index].tolist())
        assert len(pitches) == 1 and len(per_bar[index]) == 8  # the 8 hits of one Groove bar
        groove_bar = pitches.pop() - FIRST_PITCH
        assert groove_bar == section["groove_bars"][(index - section["first_bar"]) % 3]  # it loops its section's bars
    onsets = drums.notes.numpy()["time"]
    grid = [b.start + i * (b.end - b.start) // 8 for b in bars[2:20] for i in range(8)]
    assert sorted(onsets.tolist()) == grid  # evenly spaced in the Groove bar, evenly spaced in the song's bar


def test_a_song_in_2_4_takes_each_groove_bar_over_two_of_its_bars(groove):
    root, _ = groove
    score = song((2, 4), 16)
    mixed, record = DrumMixer(root).mix(score, "folder/b.mid", "train")
    assert record["song_bars_per_groove_bar"] == 2 and record["groove_metre"] == "4/4"
    per_bar = drums_by_bar(mixed, real_bars(score, score.end()))
    for first, second in zip(per_bar[0::2], per_bar[1::2]):
        assert len(first) == len(second) == 4 and set(first) == set(second) and len(set(first)) == 1


def test_beats_match_the_songs_tempo_and_metre(groove):
    root, paths = groove
    mixer = DrumMixer(root, MixSettings(nearest=3, beats_per_song=3))
    _, record = mixer.mix(song((4, 4), 12, qpm=101), "folder/c.mid", "train")
    assert sorted(record["groove_bpm"]) == [95, 100, 105]  # the nearest three of 60, 95, 100, 105, 180
    assert all("_beat_4-4" in p for p in record["groove"])  # beats only, never the fill, never the 3/4 beat
    _, waltz = mixer.mix(song((3, 4), 12), "folder/d.mid", "train")
    assert waltz["groove"] == [paths[6]] and waltz["metre"] == "3/4"
    _, slow = DrumMixer(root, MixSettings(nearest=1, beats_per_song=1)).mix(song((4, 4), 12, qpm=58), "e", "train")
    assert slow["groove_bpm"] == [60]
    with pytest.raises(SkipSong, match="5/4"):
        mixer.mix(song((5, 4), 12), "folder/f.mid", "train")
    with pytest.raises(SkipSong, match="within 2.0x"):
        mixer.mix(song((4, 4), 12, qpm=400), "folder/g.mid", "train")  # 180 qpm is more than 2x away


def test_the_same_seed_makes_the_same_arrangement_and_another_seed_another(groove):
    root, _ = groove
    score = song((4, 4), 40)
    made = {seed: DrumMixer(root, MixSettings(seed=seed)).mix(score, "folder/h.mid", "train") for seed in (0, 0, 1, 2)}
    again = DrumMixer(root, MixSettings(seed=0)).mix(score, "folder/h.mid", "train")
    assert bytes(again[0].dumps_midi()) == bytes(made[0][0].dumps_midi()) and again[1] == made[0][1]
    assert len({json.dumps(record["sections"]) for _, record in made.values()}) == 3
    other_song = DrumMixer(root).mix(score, "folder/i.mid", "train")[1]  # the song's id seeds it too
    assert other_song["sections"] != made[0][1]["sections"]


def test_only_training_songs_are_made_each_in_its_songs_split(tmp_path, groove):
    root, paths = groove
    tunes = tmp_path / "tunes"
    tunes.mkdir()
    names = {split: name_in(split, "tune{}.mid") for split in ("train", "validation", "test")}
    for name in names.values():
        song((4, 4), 12).dump_midi(tunes / name)
    rows, skipped, specs = build_mix_drums([(FolderCorpus(tunes), "GPL-3.0 (tunes)")], root, tmp_path / "corpus")
    assert [row["id"] for row in rows] == [f"folder/{names['train']}"]
    assert skipped == Counter({"validation or test song (never made)": 2})
    made = open_corpus(specs[0])
    assert made.ids == [names["train"]]  # the test and validation tunes made no file
    assert split_of(f"{made.label}/{made.song(0)}", 0, SPLIT_RATIOS) == "train"  # as the compiled corpus splits it
    assert paths[7] not in rows[0]["groove"]  # a test-split beat never goes into a training piece
    mixer = DrumMixer(root)
    _, record = mixer.mix(song((4, 4), 12), f"folder/{names['test']}", "test")  # the bench's: test beats only
    assert record["groove"] == [paths[7]]


def test_the_manifest_labels_the_pieces_synthetic_with_both_licences(tmp_path, groove):
    root, _ = groove
    shared = tmp_path / "shared"
    shared.mkdir()
    root.rename(shared / "groove")
    pop = name_in("train", "{:03d}", prefix="pop909/")
    write_pop909(shared / "pop909", {pop: (4, 2, 0, song((4, 4), 16, qpm=120, tpq=480))})
    (shared / "nottingham").mkdir()
    tune = name_in("train", "reel{}.mid")
    song((2, 4), 16, qpm=120).dump_midi(shared / "nottingham" / tune)
    manifest = build(shared, tmp_path / "corpus", ["mix_drums"], workers=1)
    rows = {row["id"]: row for row in manifest["pieces"]}
    assert sorted(rows) == [f"folder/{tune}", f"pop909/{pop}"]
    for row in rows.values():
        assert row["synthetic"] is True and row["source"] == "mix_drums" and row["split"] == "train"
        assert "CC BY 4.0 (Groove MIDI)" in row["licence"] and row["tracks"] == 2
        record = json.loads((tmp_path / "corpus" / row["path"]).with_suffix(".json").read_text())
        assert record["song"] == row["id"] and record["groove"] == row["groove"] and record["groove"]
    assert rows[f"pop909/{pop}"]["licence"].startswith("MIT") and rows[f"folder/{tune}"]["licence"].startswith("GPL")
    assert manifest["summary"]["mix_drums"] == {"pieces": 2, "notes": sum(r["notes"] for r in rows.values()),
                                                "train": 2, "validation": 0, "test": 0}
    pop_spec, tune_spec = manifest["data"]
    assert pop_spec.startswith("pop909:") and tune_spec.startswith("folder:")
    reopened = open_corpus(pop_spec)  # a POP909 folder of its own: its songs' split keys, its annotated metre
    assert reopened.ids == [pop] and f"{reopened.label}/{reopened.song(0)}" == f"pop909/{pop}"
    assert reopened.load(0).tracks[-1].is_drum
    assert "mix_drums" in SOURCES and "mix_drums" not in DEFAULT_SOURCES  # off unless named
    from midi_rwkv.cli import build_parser

    assert "mix_drums" not in build_parser().parse_args(["build-corpus"]).sources.split(",")


def test_a_groove_file_loses_its_last_bar_and_its_sparse_bars():
    score = groove_score((4, 4), 100, 6, 8)
    length, bars = groove_bars(score, min_hits=1)
    assert length == 4 * GROOVE_TPQ and sorted(bars) == list(range(6))  # the closing hit's bar is not used
    assert all((b["time"] >= 0).all() and (b["time"] < length).all() for b in bars.values())
    sparse = groove_score((4, 4), 100, 6, 3)
    assert groove_bars(sparse, min_hits=4)[1] == {}
