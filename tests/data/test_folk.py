"""music21's ABC folk collections: one MIDI per tune, stable ids, resumable, a bad tune is reported, not fatal."""

from __future__ import annotations

import pytest

from midi_rwkv.data import build_corpus, folk
from midi_rwkv.data.folk import COLLECTIONS, Collection, convert_tunes, split_tunes, tunes
from midi_rwkv.data.prefilter import SPLIT_RATIOS, split_of
from midi_rwkv.tokenizer.score import load_score

pytest.importorskip("music21")

# a file header, then three tunes: a 2/4 reel with a one-eighth pickup, a 3/4 air, and one with no note at all
OPUS = """% A Tiny Collection, printed 1800
% header comments reach every tune

X: 1
T: Reel with a pickup
M: 2/4
L: 1/8
K: G
A | BAGA | B2 d2 | e2 dB | A3 :|

X: 2
T: Air
M: 3/4
L: 1/4
K: D
D F A | d3 | c B A | d3 |]

X: 3
T: Only rests
M: 4/4
L: 1/4
K: C
z4 | z4 |]
"""
TINY = Collection("tiny", "number")


@pytest.fixture()
def opus(tmp_path):
    root = tmp_path / "music21corpus" / "tiny"
    root.mkdir(parents=True)
    (root / "a.abc").write_text(OPUS, encoding="utf-8")
    return root


def _write(folder, text, name="a.abc"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_a_file_splits_into_its_tunes_each_with_the_header(opus):
    header, texts = split_tunes(OPUS)
    assert header.startswith("% A Tiny Collection") and [t.splitlines()[0] for t in texts] == ["X: 1", "X: 2", "X: 3"]
    listed = tunes(TINY, root=opus)
    assert [t.id for t in listed] == ["tiny/0001", "tiny/0002", "tiny/0003"]
    assert all(t.abc.startswith("% A Tiny Collection") for t in listed) and "Only rests" in listed[2].abc


def test_ids_do_not_depend_on_where_or_in_which_file_a_tune_is(opus, tmp_path):
    first = [t.id for t in tunes(TINY, root=opus)]
    assert [t.id for t in tunes(TINY, root=_write(tmp_path / "elsewhere", OPUS, "other-name.abc"))] == first
    # a second transcription of tune 2 in a later file is dropped (same number: same tune, one split)
    (opus / "b.abc").write_text("X: 2\nT: Air again\nM: 3/4\nL: 1/4\nK: D\nD2 F | A3 |]\n", encoding="utf-8")
    assert [t.id for t in tunes(TINY, root=opus)] == first
    # different tunes filed under one signature are all kept
    signed = "X:1\nN: Q0155A\nK:C\nCDEF|\nX:2\nN: Q0155A\nK:C\nGABc|\nX:3\nN: Q0155B\nK:C\nc4|\n"
    assert [t.id for t in tunes(Collection("essen", "signature"), root=_write(tmp_path / "essen", signed))] == [
        "essen/Q0155A", "essen/Q0155A-2", "essen/Q0155B"
    ]


def test_each_tune_becomes_one_midi_once_and_a_bad_tune_is_reported(opus, tmp_path):
    dst = tmp_path / "corpus" / "folk_tiny"
    failures = convert_tunes(tunes(TINY, root=opus), dst, workers=1)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.mid")) == ["tiny/0001.mid", "tiny/0002.mid"]
    assert len(failures) == 1 and failures[0].startswith("tiny/0003:") and "no pitched notes" in failures[0]

    reel = load_score(dst / "tiny" / "0001.mid")
    (track,) = reel.tracks
    assert [n.pitch for n in track.notes][:5] == [69, 71, 69, 67, 69] and track.note_num() == 11
    ts = reel.time_signatures[0]
    assert (ts.time, ts.numerator, ts.denominator) == (0, 2, 4)
    assert track.notes[0].time == 3 * 240 and track.notes[1].time == 960  # pickup padded: bar 2 starts on a bar line
    air = load_score(dst / "tiny" / "0002.mid")
    assert air.tracks[0].notes[0].time == 0 and air.time_signatures[0].numerator == 3

    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*.mid")}
    again = convert_tunes(tunes(TINY, root=opus), dst, workers=1)  # resumes: only the failed tune is tried again
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*.mid")} == stamps and len(again) == 1


def test_build_lists_the_tunes_with_licence_and_split(opus, tmp_path, monkeypatch):
    monkeypatch.setattr(folk, "music21_corpus", lambda: opus.parent)
    monkeypatch.setitem(COLLECTIONS, "tiny", TINY)
    monkeypatch.setitem(build_corpus.SOURCES, "folk_tiny", ("tiny", "public domain tunes", "abc"))
    out = tmp_path / "corpus"
    with pytest.raises(build_corpus.MidiRwkvError, match="nothing converted yet"):
        build_corpus.build(tmp_path / "no-shared-data", out, ["folk_tiny"], workers=1, convert=False)
    manifest = build_corpus.build(tmp_path / "no-shared-data", out, ["folk_tiny"], workers=1)
    assert [r["id"] for r in manifest["pieces"]] == ["tiny/0001.mid", "tiny/0002.mid"]
    assert {r["licence"] for r in manifest["pieces"]} == {"public domain tunes"}
    assert [r["split"] for r in manifest["pieces"]] == [
        split_of(f"folder/tiny/{n}.mid", 0, SPLIT_RATIOS) for n in ("0001", "0002")
    ]
    assert manifest["data"] == [f"folder:{out / 'folk_tiny'}"] and len(manifest["failures"]["folk_tiny"]) == 1


@pytest.mark.parametrize(
    "name, count, first",
    [
        ("essenFolksong", 8462, "essenFolksong/A0001"),
        ("oneills1850", 1838, "oneills1850/0001"),
        ("ryansMammoth", 1059, "ryansMammoth/42dHighlandRegimentStrathspey"),
        ("airdsAirs", 1180, "airdsAirs/0001"),
    ],
)
def test_music21_collections_have_unique_stable_ids(name, count, first):
    ids = [t.id for t in tunes(COLLECTIONS[name])]
    assert len(ids) == len(set(ids)) == count and ids[0] == first
    source = next(s for s, (folder, _, kind) in build_corpus.SOURCES.items() if folder == name and kind == "abc")
    assert source.startswith("folk_") and build_corpus.SOURCES[source][1]
