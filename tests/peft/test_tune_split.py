"""``midi-rwkv tune``'s default split is the base model's own song split: its test songs are the ones ``midi-rwkv
evaluate`` draws its prompts from, and none of them is in the split the base (or the adapter) trains on."""

import json

from midi_rwkv.data.corpora import MergedCorpus, open_corpus
from midi_rwkv.data.prefilter import Manifest, prefilter, split_subset
from midi_rwkv.data.splits import SPLIT_RATIOS, SPLITS, split_of
from midi_rwkv.metrics.prompts import choose_prompts
from midi_rwkv.peft.finetune import corpus_splits
from midi_rwkv.peft.tune_config import TuneConfig
from midi_rwkv.tokenizer import InfillTokenizer
from tests.conftest import TPQ, make_score
from tests.data.test_corpora import write_pop909

SONGS = [f"{i:03d}" for i in range(1, 61)]


def _song(k: int):
    notes = [(i * TPQ, TPQ, 48 + (i * 5 + k) % 24, 80) for i in range(128)]  # 32 bars of 4/4, 128 notes
    return make_score([(0, 4, 4)], [(0, False, notes)])


def _pop909(root):
    write_pop909(root, {song: (4, 2, 0, _song(k)) for k, song in enumerate(SONGS)})
    return f"pop909:{root}"


def _tune_split(spec, out, **settings):
    corpus, *ids = corpus_splits(TuneConfig(data=spec, out=str(out), **settings), InfillTokenizer(), out, False)
    return {name: {corpus.ids[i] for i in part} for name, part in zip(SPLITS, ids)}


def test_tune_tests_on_the_evaluation_s_songs_and_trains_on_none_of_them(tmp_path):
    spec = _pop909(tmp_path / "pop909")
    corpus = open_corpus(spec)
    base = {name: set(split_subset(corpus, name).ids) for name in SPLITS}  # the base's split, evaluate's test songs
    assert base["test"] and base["validation"]
    tuned = _tune_split(spec, tmp_path / "run")
    assert tuned == base  # every song is usable, so the whole split is the base's
    assert not tuned["train"] & base["test"] and not tuned["test"] & base["train"]

    prompts = choose_prompts(spec, InfillTokenizer(), len(SONGS), 4, 2, progress=False)  # evaluate's test prompts
    assert {p.piece for p in prompts} == tuned["test"]

    # the old rule (a bare song's hash, 80/10/10) would have trained on some of them
    old = {name: {s for s in SONGS if split_of(s, 0, (0.8, 0.1, 0.1)) == name} for name in SPLITS}
    assert old["train"] & base["test"] and old["test"] != base["test"]


def test_the_tune_seed_does_not_move_the_split(tmp_path):
    spec = _pop909(tmp_path / "pop909")
    assert _tune_split(spec, tmp_path / "a", seed=0) == _tune_split(spec, tmp_path / "b", seed=3)


def test_a_cache_written_under_the_old_rule_is_split_again(tmp_path):
    spec = _pop909(tmp_path / "pop909")
    corpus = open_corpus(spec)
    cache = tmp_path / "run" / "cache" / "manifest.json"
    fresh = prefilter(corpus, InfillTokenizer(), cache, progress=False)
    stale = Manifest.load(cache)
    stale.splits = {name: [i for i in range(len(corpus)) if split_of(corpus.song(i), 0, SPLIT_RATIOS) == name]
                    for name in SPLITS}
    assert stale.splits != fresh.splits
    stale.save(cache)
    assert _tune_split(spec, tmp_path / "run")["test"] == set(split_subset(corpus, "test").ids)
    assert json.loads(cache.read_text())["splits"] == fresh.splits  # the cache itself is brought in line


def test_the_training_path_keeps_its_split(tmp_path):
    """``midi-rwkv train --data pop909:...`` prefilters a merged corpus, whose songs carry their label already."""
    corpus = open_corpus(_pop909(tmp_path / "pop909"))
    merged = MergedCorpus([corpus])
    manifest = prefilter(merged, InfillTokenizer(), tmp_path / "m.json", progress=False)
    assert {name: [merged.ids[i] for i in ids] for name, ids in manifest.splits.items()} == {
        name: [f"pop909/{s}" for s in split_subset(corpus, name).ids] for name in SPLITS}
    assert split_subset(merged, "test").ids == [merged.ids[i] for i in manifest.splits["test"]]


def test_a_split_file_still_decides(tmp_path):
    spec = _pop909(tmp_path / "pop909")
    named = {"train": SONGS[:4], "validation": SONGS[4:5], "test": SONGS[5:7]}
    (tmp_path / "split.json").write_text(json.dumps(named))
    tuned = _tune_split(spec, tmp_path / "run", split_file=str(tmp_path / "split.json"))
    assert tuned == {name: set(ids) for name, ids in named.items()}
