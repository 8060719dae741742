"""MusicXML conversion, the corpus manifest, and split subsets."""

from __future__ import annotations

import shutil

import pytest

from midi_rwkv.data.build_corpus import build
from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.data.prefilter import SPLIT_RATIOS, split_of, split_subset
from midi_rwkv.errors import MidiRwkvError
from tests.conftest import FIXTURES

music21 = pytest.importorskip("music21")
CHORALE_XML = music21.corpus.getWork("bach/bwv66.6")


def test_musicxml_becomes_one_track_per_part_with_its_notes_and_metre():
    from midi_rwkv.data.musicxml import musicxml_to_score

    score = musicxml_to_score(CHORALE_XML)
    parsed = music21.converter.parse(str(CHORALE_XML))
    assert len(score.tracks) == len(parsed.parts) == 4
    for track, part in zip(score.tracks, parsed.parts):
        expected = sum(len(n.pitches) for n in part.stripTies().flatten().notes if n.quarterLength > 0)
        assert track.note_num() == expected
    ts = score.time_signatures[0]
    assert (ts.numerator, ts.denominator) == (4, 4) and score.ticks_per_quarter == 480


def test_build_converts_once_records_failures_and_splits(tmp_path):
    scores = tmp_path / "shared" / "sources" / "lieder" / "scores"
    scores.mkdir(parents=True)
    shutil.copy(CHORALE_XML, scores / "chorale.mxl")
    (scores / "broken.mxl").write_bytes(b"not a zip")
    manifest = build(tmp_path / "shared", tmp_path / "corpus", ["lieder"], workers=1)
    converted = tmp_path / "corpus" / "lieder" / "chorale.mid"
    assert converted.is_file() and not (tmp_path / "corpus" / "lieder" / "broken.mid").exists()
    assert len(manifest["failures"]["lieder"]) == 1 and "broken.mxl" in manifest["failures"]["lieder"][0]
    (row,) = manifest["pieces"]
    assert row["source"] == "lieder" and row["licence"] == "CC0" and row["tracks"] == 4 and row["notes"] > 100
    assert row["split"] == split_of("folder/chorale.mid", 0, SPLIT_RATIOS)
    assert manifest["data"] == [f"folder:{tmp_path / 'corpus' / 'lieder'}"]
    stamp = converted.stat().st_mtime_ns
    build(tmp_path / "shared", tmp_path / "corpus", ["lieder"], workers=1)
    assert converted.stat().st_mtime_ns == stamp  # kept, not converted again
    with pytest.raises(MidiRwkvError, match="missing"):
        build(tmp_path / "shared", tmp_path / "corpus", ["quartets"], workers=1)


def test_split_subsets_partition_the_corpus():
    corpus = FolderCorpus(FIXTURES)
    parts = {name: split_subset(corpus, name) for name in ("train", "validation", "test")}
    assert sorted(i for p in parts.values() for i in p.ids) == sorted(corpus.ids)
    for part in parts.values():
        assert part.ids == [corpus.ids[i] for i in part.indices] and part.label == corpus.label
    (holder,) = [p for p in parts.values() if "bach_bwv66.6.mid" in p.ids]
    index = holder.ids.index("bach_bwv66.6.mid")
    assert holder.load(index).note_num() == corpus.load(corpus.ids.index("bach_bwv66.6.mid")).note_num() > 0
    with pytest.raises(MidiRwkvError, match="unknown split"):
        split_subset(corpus, "dev")


def test_a_pickup_bar_is_padded_so_that_bar_lines_fall_on_the_metre():
    """BWV 66.6 starts with a one-beat pickup in 4/4: its first note sounds on beat 4 of bar 1, and every phrase's
    notes line up with the bars after it."""
    from midi_rwkv.data.musicxml import musicxml_to_score

    score = musicxml_to_score(CHORALE_XML)
    parsed = music21.converter.parse(str(CHORALE_XML))
    soprano = parsed.parts[0].stripTies().flatten().notes
    measures = parsed.parts[0].getElementsByClass(music21.stream.Measure)
    assert float(measures.first().paddingLeft) == 3.0  # the fixture really has a pickup of 1 beat in 4/4
    first = min(n.time for n in score.tracks[0].notes)
    assert first == 3 * 480
    second_bar = measures[1]  # its first note is a downbeat: it must fall on bar 2's line, 4 beats in
    downbeat = second_bar.notes.first()
    tick = round((float(downbeat.getOffsetInHierarchy(parsed.parts[0])) + 3.0) * 480)
    assert tick == 4 * 480 and tick in {n.time for n in score.tracks[0].notes}
    assert len(soprano) > 0
