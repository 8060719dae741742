import zipfile

import pytest

from midi_rwkv.data.corpora import FolderCorpus, GigaMidiCorpus, Pop909Corpus, open_corpus
from midi_rwkv.data.dataset import Collator, InfillDataset, StepSampler, make_labels, unlearned_ids
from midi_rwkv.data.prefilter import Manifest, prefilter, split_of, split_subset
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.examples import ExampleConfig
from tests.conftest import FIXTURES, TPQ, make_score


def write_pop909(root, songs):
    """A miniature POP909 folder: NNN/NNN.mid, NNN/beat_midi.txt and an index.xlsx like the real one."""
    rows = []
    for song, (beats, quavers, pickup, score) in songs.items():
        (root / song).mkdir(parents=True)
        score.dump_midi(root / song / f"{song}.mid")
        seconds_per_beat = 0.5  # 120 qpm
        lines = [
            f"{i * seconds_per_beat} {1.0 if (i - pickup) % beats == 0 and i >= pickup else 0.0} 0.0" for i in range(64)
        ]
        (root / song / "beat_midi.txt").write_text("\n".join(lines) + "\n")
        rows.append((song, beats, quavers))

    def cells(r, values):
        return "".join(f'<c r="{c}{r}" t="inlineStr"><is><t>{v}</t></is></c>' for c, v in zip("ABCDEF", values))

    sheet = (
        '<worksheet><sheetData><row r="1">'
        + cells(1, ["song_id", "name", "artist", "modify_times", "num_beats_per_measure", "num_quavers_per_beat"])
        + "</row>"
    )
    sheet += "".join(
        f'<row r="{i + 2}">' + cells(i + 2, [s, "x", "y", "1", b, q]) + "</row>" for i, (s, b, q) in enumerate(rows)
    )
    sheet += "</sheetData></worksheet>"
    with zipfile.ZipFile(root / "index.xlsx", "w") as z:
        z.writestr("xl/worksheets/sheet1.xml", sheet)


def _song(n_beats=32):
    notes = [(i * TPQ, TPQ, 60 + i % 12, 80) for i in range(n_beats)] * 4
    return make_score([(0, 1, 4)], [(0, False, notes)])  # the file's own metre is wrong (1/4), as in POP909


def test_pop909_metre_comes_from_the_annotations(tmp_path):
    write_pop909(tmp_path, {"001": (4, 2, 0, _song()), "002": (3, 2, 1, _song()), "003": (2, 3, 0, _song())})
    corpus = Pop909Corpus(tmp_path)
    assert corpus.ids == ["001", "002", "003"]
    ts = lambda i: [(t.time, t.numerator, t.denominator) for t in corpus.load(i).time_signatures]  # noqa: E731
    assert ts(0) == [(0, 4, 4)]
    assert ts(1) == [(0, 1, 4), (TPQ, 3, 4)]  # one-beat pickup, then 3/4
    assert ts(2) == [(0, 6, 8)]  # two dotted-quarter beats per bar
    assert InfillTokenizer().prepare(corpus.load(0)).num_bars == 8


def test_gigamidi_loader_reads_a_local_parquet_table(tmp_path, chorale_path):
    datasets = pytest.importorskip("datasets")
    table = datasets.Dataset.from_dict({"md5": ["a1", "b2"], "music": [chorale_path.read_bytes(), b"not midi"]})
    table.to_parquet(str(tmp_path / "giga.parquet"))
    corpus = open_corpus(f"gigamidi:{tmp_path / 'giga.parquet'}")
    assert isinstance(corpus, GigaMidiCorpus) and corpus.ids == ["a1", "b2"]
    assert corpus.load(0).note_num() == 163
    table.save_to_disk(str(tmp_path / "saved"))
    assert GigaMidiCorpus(str(tmp_path / "saved")).ids == ["a1", "b2"]


def test_prefilter_caches_splits_and_records_reasons(tmp_path):
    tok = InfillTokenizer()
    corpus = FolderCorpus(FIXTURES)
    cache = tmp_path / "manifest.json"
    manifest = prefilter(corpus, tok, cache, min_bars=4, min_notes=100, progress=False)
    kept = sum(len(v) for v in manifest.splits.values())
    assert kept == 1 and len(manifest.skipped) == 4
    assert manifest.skipped["no_notes.mid"].startswith("EmptyScoreError")
    assert Manifest.load(cache).splits == manifest.splits
    strict = prefilter(corpus, tok, cache, min_bars=20, progress=False)  # other criteria: recomputed
    assert strict.skipped["bach_bwv66.6.mid"].startswith("too few bars")


def test_splits_are_deterministic_by_piece():
    ratios = (0.8, 0.1, 0.1)
    splits = [split_of(f"song{i}", 0, ratios) for i in range(1000)]
    assert splits == [split_of(f"song{i}", 0, ratios) for i in range(1000)]
    assert 700 < splits.count("train") < 900 and splits.count("validation") > 50


def test_loss_masking_skips_controls_and_infill_markers(tok, chorale_path):
    seq = tok.bar_infill(tok.prepare(chorale_path), 1, (2, 4))
    inputs, labels = make_labels(seq.ids, unlearned_ids(tok))
    names = tok.codec.vocab.tokens
    assert inputs == seq.ids[:-1] and len(labels) == len(inputs)
    for target, label in zip(seq.ids[1:], labels):
        masked = names[target].startswith("AC") or names[target] in (
            "Infill_Bar",
            "FillBar_Start",
            "Infill_Track",
            "PAD_None",
        )
        assert (label == -100) == masked
    assert labels[-1] == tok.codec.vocab["FillBar_End"]  # the end of the section is learned


def test_collator_pads_and_refuses_to_cut(tok):
    collate = Collator(max_len=5)
    batch = collate([{"input_ids": [1, 2, 3], "labels": [2, 3, 6]}, None, {"input_ids": [4], "labels": [6]}])
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["labels"].tolist() == [[2, 3, 6], [6, -100, -100]]
    assert collate.dropped == 1 and batch["dropped"] == 1  # the batch carries it out of DataLoader workers
    with pytest.raises(ValueError, match="refusing to cut"):
        collate([{"input_ids": list(range(6)), "labels": list(range(6))}])


def test_dataset_examples_fit_the_context_and_keep_fillbar_end(tok, chorale_path):
    corpus = FolderCorpus(FIXTURES)
    position = corpus.ids.index("bach_bwv66.6.mid")
    data = InfillDataset(corpus, [position], tok, ExampleConfig(max_len=129, bar_infill_ratio=1.0))
    fill_end = tok.codec.vocab["FillBar_End"]
    for seed in range(10):
        item = data[(0, seed)]
        assert len(item["input_ids"]) <= 128 and item["labels"][-1] == fill_end
    assert data[(0, 3)] == data[(0, 3)]  # the same key gives the same example


def test_step_sampler_resumes_mid_epoch():
    full = list(StepSampler(10, 3, total_steps=8, seed=4))
    assert len(full) == 8 and all(len(b) == 3 for b in full)
    assert list(StepSampler(10, 3, total_steps=8, start=5, seed=4)) == full[5:]
    epoch0 = [k[0] for b in full[:3] for k in b]
    assert len(set(epoch0)) == 9  # no piece twice within an epoch


def test_splits_do_not_depend_on_where_the_data_lives(tmp_path):
    import shutil

    from midi_rwkv.data.corpora import MergedCorpus

    for where in ("a", "b/c"):
        shutil.copytree(FIXTURES, tmp_path / where, ignore=shutil.ignore_patterns("*.py", "*.json"))
    ids = [MergedCorpus([FolderCorpus(tmp_path / where)]).ids for where in ("a", "b/c")]
    assert ids[0] == ids[1] and ids[0][0].startswith("folder/")


def test_tiny_corpora_use_every_piece_for_each_split(tmp_path, capsys):
    manifest = prefilter(FolderCorpus(FIXTURES), InfillTokenizer(), tmp_path / "m.json", min_bars=4, progress=False)
    train, val, test = manifest.usable_splits()
    assert train == val == test and len(train) == 1
    assert "too few to split" in capsys.readouterr().out
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepSampler(0, 1, 5)


def test_pop909_versions_take_their_song_s_split(tmp_path):
    songs = {f"{i:03d}": (4, 2, 0, _song(16)) for i in range(1, 41)}
    write_pop909(tmp_path, songs)
    for song in songs:
        (tmp_path / song / "versions").mkdir()
        for k in (1, 2, 10):
            _song(16).dump_midi(tmp_path / song / "versions" / f"{song}-v{k}.mid")
    plain, both = open_corpus(f"pop909:{tmp_path}"), open_corpus(f"pop909+versions:{tmp_path}")
    assert len(plain) == 40 and len(both) == 160 and both.ids[:5] == ["001", "001/v1", "001/v2", "001/v10", "002"]
    assert plain.name != both.name  # caches keyed by corpus name do not mix them
    version = both.load(both.ids.index("007/v2"))
    assert [(t.numerator, t.denominator) for t in version.time_signatures] == [(4, 4)]  # the song's annotated metre
    split = {name: set(split_subset(both, name).ids) for name in ("train", "validation", "test")}
    for name, ids in split.items():
        songs_here = {i.split("/")[0] for i in ids}
        assert ids == {i for i in both.ids if i.split("/")[0] in songs_here}, name  # every version beside its song
        assert songs_here == set(split_subset(plain, name).ids), name  # and the songs' split is unchanged
    assert split["validation"] | split["test"] and not {i.split("/")[0] for i in split["train"]} & {
        i.split("/")[0] for i in split["validation"] | split["test"]}
    manifest = prefilter(both, InfillTokenizer(), tmp_path / "cache.json", min_bars=1, min_notes=0, progress=False)
    where = {both.ids[i]: name for name, indices in manifest.splits.items() for i in indices}
    assert len(where) == 160 and all(where[i] == where[i.split("/")[0]] for i in where)  # the prefilter agrees
