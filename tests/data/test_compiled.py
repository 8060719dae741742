"""The compiled corpus: the same examples as the MIDI-based builder, rebuilt only when needed, no MidiTok to train."""

import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symusic import Score

from midi_rwkv.data.compile import compile_source, representable, shard_name
from midi_rwkv.data.compiled import CompiledCorpus, CompiledDataset, CompiledExamples
from midi_rwkv.data.corpora import FolderCorpus
from midi_rwkv.data.dataset import loader_of
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.examples import ExampleBuilder, ExampleConfig
from tests.conftest import TPQ, make_score

ROOT = Path(__file__).resolve().parents[2]
BPE = ROOT / "midi_rwkv.tokenizer.json"  # the shipped model's BPE tokenizer: shifted bodies must re-merge


def _random_piece(seed: int) -> Score:
    """A band piece: 3/4 then 4/4, a tempo change, notes near the range limits, drums, an empty track and a
    program-127 track the vocabulary lacks, and some notes outside the vocabulary's pitch range."""
    rng = random.Random(seed)
    bars = rng.randint(10, 20)
    starts = [0]
    for b in range(bars):
        starts.append(starts[-1] + (3 if b < 4 else 4) * TPQ)

    def part(low: int, high: int, per_bar: int, drum: bool = False):
        notes = []
        for b in range(bars):
            if rng.random() < 0.15:
                continue  # an empty bar now and then
            for _ in range(rng.randint(1, per_bar)):
                onset = starts[b] + rng.randrange(0, starts[b + 1] - starts[b], TPQ // 4)
                length = rng.choice([TPQ // 4, TPQ // 2, TPQ, 2 * TPQ, 4 * TPQ])
                notes.append((onset, length, rng.randint(low, high), rng.randint(30, 120)))
        return notes

    tracks = [(0, False, part(55, 96, 8)), (33, False, part(24, 50, 3)), (48, False, part(50, 84, 4)),
              (0, True, part(35, 60, 10, drum=True)), (0, False, []), (127, False, part(60, 70, 2))]
    tracks[0][2].append((0, TPQ, 110, 80))  # above Pitch_108: dropped before any shift
    score = make_score([(0, 3, 4), (starts[4], 4, 4)], tracks, tempos=[(0, 96.0), (starts[6], 132.0)])
    return score


@pytest.fixture(scope="module")
def bpe() -> InfillTokenizer:
    return InfillTokenizer.load(BPE)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory, chorale_source):
    folder = tmp_path_factory.mktemp("pieces")
    for seed in range(4):
        _random_piece(seed).dump_midi(folder / f"band{seed}.mid")
    (folder / "chorale.mid").write_bytes(chorale_source.read_bytes())
    out = tmp_path_factory.mktemp("compiled")
    compile_source(f"folder:{folder}", BPE, out, progress=False, min_bars=4, min_notes=10)
    return folder, out


@pytest.fixture(scope="module")
def chorale_source() -> Path:
    return ROOT / "tests" / "fixtures" / "bach_bwv66.6.mid"


@pytest.mark.parametrize("layout", ["file-order", "target-last"])
def test_examples_from_the_compiled_corpus_are_token_for_token_the_midi_builder_s(compiled, bpe, layout):
    folder, out = compiled
    corpus, midi = CompiledCorpus(out), FolderCorpus(folder)
    assert len(corpus) == len(midi) == 5
    config = ExampleConfig(max_len=512, layout=layout)
    reference, fast = ExampleBuilder(bpe, config), CompiledExamples(corpus, config)
    kinds, shifted = set(), 0
    for index in range(len(corpus)):
        assert corpus.ids[index] == f"folder/{midi.ids[index]}"
        score = representable(midi.load(index), bpe)
        for seed in range(25):
            want, got = reference(score, random.Random(seed)), fast(index, random.Random(seed))
            assert (want is None) == (got is None)
            if want is None:
                continue
            # (``track`` is not compared: the MIDI builder numbers the kept tracks of its copy, the compiled one the
            # file's tracks; the ids name no track)
            assert (got.ids, got.prompt_len, got.kind, got.bars) == (want.ids, want.prompt_len, want.kind, want.bars), (
                corpus.ids[index], seed)
            kinds.add(want.kind)
    # the draws covered both kinds and really shifted pitches (the shift is drawn first; see ExampleDrawer)
    assert kinds == {"bar", "track"}
    for index in range(len(corpus)):
        for seed in range(25):
            rng = random.Random(seed)
            tracks = fast._choose_tracks(index, rng)
            shift = fast._choose_shift(index, tracks, rng)
            shifted += bool(shift and shift[0])
    assert shifted > 50


def test_a_shard_records_its_pieces_and_is_rebuilt_only_when_sources_or_tokenizer_change(compiled, tmp_path):
    folder, out = compiled
    shard = out / shard_name(f"folder:{folder}")
    meta = json.loads((shard / "meta.json").read_text())
    assert meta["tokenizer_sha256"] and meta["vocab_size"] == InfillTokenizer.load(BPE).vocab_size
    assert {p["split"] for p in meta["pieces"]} <= {"train", "validation", "test"}
    assert all(p["tokens"] > 0 for p in meta["pieces"])
    before = (shard / "meta.json").stat().st_mtime_ns
    compile_source(f"folder:{folder}", BPE, out, progress=False, min_bars=4, min_notes=10)
    assert (shard / "meta.json").stat().st_mtime_ns == before  # up to date: kept
    other = tmp_path / "base.json"
    InfillTokenizer().save(other)
    compile_source(f"folder:{folder}", other, out, progress=False, min_bars=4, min_notes=10)
    assert json.loads((shard / "meta.json").read_text())["vocab_size"] == 663  # a new tokenizer: compiled again
    compile_source(f"folder:{folder}", BPE, out, progress=False, min_bars=4, min_notes=10)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary or old folder left


def test_a_shard_is_rebuilt_when_a_source_file_changes_its_size_or_its_time(chorale_source, tmp_path):
    folder, out = tmp_path / "pieces", tmp_path / "out"
    folder.mkdir()
    piece = folder / "chorale.mid"
    shutil.copyfile(chorale_source, piece)
    spec = f"folder:{folder}"
    meta = out / shard_name(spec) / "meta.json"

    def compile_and_read():
        compile_source(spec, BPE, out, progress=False, min_bars=4, min_notes=10)
        return json.loads(meta.read_text())["source"], meta.stat().st_mtime_ns

    first, written = compile_and_read()
    assert compile_and_read() == (first, written)  # nothing changed: kept
    stat = piece.stat()
    os.utime(piece, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the same bytes, touched
    touched, rewritten = compile_and_read()
    assert touched != first and rewritten != written
    score = Score(str(piece))
    score.tracks[0].notes.append(score.tracks[0].notes[0].copy())  # a note more: a larger file
    score.dump_midi(str(piece))
    os.utime(piece, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # at the time it had
    assert piece.stat().st_size != stat.st_size
    resized, _ = compile_and_read()
    assert resized not in (first, touched)


def test_a_shard_stores_each_track_s_bar_statistics_as_the_midi_path_computes_them(compiled, bpe):
    folder, out = compiled
    corpus, midi = CompiledCorpus(out), FolderCorpus(folder)
    (shard,) = corpus.shards
    bars = 0
    for index in range(len(corpus)):
        piece = bpe.prepare(representable(midi.load(index), bpe), midi.ids[index])
        enc = bpe.encode(piece)
        fast = shard.encode(index, shard.played_tracks(index), 0)
        assert fast.piece.track_ids == piece.track_ids and len(fast.tracks) == len(enc.tracks)
        for t in range(len(enc.tracks)):
            want, got = enc.statistics(t), fast.statistics(t)
            for field in dataclasses.fields(want):  # count, polyphony, durations, pairs, repeats: every bar
                assert np.array_equal(getattr(got, field.name), getattr(want, field.name)), (index, t, field.name)
            assert np.array_equal(got.repetition, want.repetition, equal_nan=True)
            bars += len(want)
    assert bars > 200  # the fixture's pieces hold a few hundred track bars


def test_an_interrupted_compile_keeps_the_old_shard(compiled, tmp_path, monkeypatch):
    folder, _ = compiled
    out = tmp_path / "out"
    compile_source(f"folder:{folder}", BPE, out, progress=False, min_bars=4, min_notes=10)
    shard = out / shard_name(f"folder:{folder}")
    meta = (shard / "meta.json").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken)
    with pytest.raises(OSError):
        compile_source(f"folder:{folder}", BPE, out, progress=False, force=True, min_bars=4, min_notes=10)
    assert (shard / "meta.json").read_bytes() == meta
    assert sorted(p.name for p in out.iterdir()) == [shard.name]


def test_the_compiled_path_refuses_what_it_cannot_do(compiled):
    _, out = compiled
    corpus = CompiledCorpus(out)
    with pytest.raises(MidiRwkvError, match="velocity"):
        CompiledExamples(corpus, ExampleConfig(velocity_offset=2))
    with pytest.raises(MidiRwkvError, match="beyond"):
        CompiledExamples(corpus, ExampleConfig(pitch_offset=7))
    with pytest.raises(MidiRwkvError, match="no compiled corpus"):
        CompiledCorpus(out / "nothing")


def test_batches_from_the_compiled_corpus(compiled):
    _, out = compiled
    corpus = CompiledCorpus(out)
    data = CompiledDataset(corpus, list(range(len(corpus))), ExampleConfig(max_len=257))
    batches = list(loader_of(data, 256, batch=2, steps=3, seed=1))
    assert len(batches) == 3 and all(b["input_ids"].shape[1] <= 256 for b in batches)
    assert all((b["labels"] != -100).any() for b in batches)


_NO_MIDI_LIBRARIES = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('miditok', 'symusic'):
            raise ImportError('not on this machine: ' + name)
sys.meta_path.insert(0, Block())
from midi_rwkv.train.pretrain import train
from midi_rwkv.train.train_config import TrainConfig
train(TrainConfig(out=sys.argv[2], data=['compiled:' + sys.argv[1]], ctx_len=256, batch_size=2, steps=2,
                  val_every=2, val_batches=1, ckpt_every=2, workers=0, precision='32-true', accelerator='cpu'),
      progress=False)
assert 'miditok' not in sys.modules and 'symusic' not in sys.modules
print('trained without MidiTok')
"""


@pytest.mark.slow
def test_training_from_a_compiled_corpus_needs_neither_miditok_nor_symusic(compiled, tmp_path):
    _, out = compiled
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", _NO_MIDI_LIBRARIES, str(out), str(run)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained without MidiTok" in done.stdout
    assert (run / "model.pth").is_file() and (run / "tokenizer.json").read_bytes() == BPE.read_bytes()
    from midi_rwkv.model.checkpoint import open_model

    model, tokenizer, _ = open_model(run / "model.pth")  # what it wrote loads for inference, tokenizer and all
    assert tokenizer.vocab_size == model.config.vocab_size


def test_check_data_reports_a_compiled_corpus(compiled, capsys):
    from midi_rwkv.cli import main

    _, out = compiled
    assert main(["check-data", f"compiled:{out}", "--max-len", "512"]) == 0
    report = json.loads(capsys.readouterr().out)
    (shard,) = report["shards"].values()
    assert sum(shard["pieces"].values()) == 5 and sum(report["examples"].values()) == 5
    assert report["vocab_size"] == InfillTokenizer.load(BPE).vocab_size and report["example_tokens_max"] <= 512


def test_evaluation_prompts_chosen_from_a_compiled_corpus_name_its_midi_source(compiled, bpe):
    from midi_rwkv.metrics.prompts import choose_prompts

    folder, out = compiled
    fast = choose_prompts(f"compiled:{out}", None, 4, 2, 2, split="all", progress=False)
    slow = choose_prompts(f"folder:{folder}", bpe, 4, 2, 2, split="all", progress=False)
    assert len(fast) == 4 and all(p.corpus == f"folder:{folder}" for p in fast)
    # on-grid notes, every piece compiled: the arrays choose exactly what MidiTok's view chooses
    assert [p.to_dict() for p in fast] == [p.to_dict() for p in slow]
