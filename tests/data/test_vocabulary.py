import pytest

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.data.corpora import FolderCorpus, midi_files
from midi_rwkv.data.vocabulary import gather_words
from midi_rwkv.tokenizer.bpe import count_bpe_tokens, train_bpe
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = InfillTokenizer()
    words = gather_words(base, [FolderCorpus(FIXTURES)], progress=False)
    return base, words, train_bpe(base, words, vocab_size=900, progress=False)


def test_bpe_keeps_base_ids_and_shortens_sequences(trained):
    base, words, tok = trained
    assert tok.vocab_size == 900
    assert tok.codec.pieces[:663] == [(i,) for i in range(663)]
    assert all(tok.codec.pieces[i] for i in range(663, 900))  # no empty (Metaspace-only) token
    assert count_bpe_tokens(tok, words) < words.base_tokens / 2


def test_bpe_sequences_decode_to_the_base_sequence(trained, chorale_path):
    base, _, tok = trained
    piece_base, piece_bpe = base.prepare(chorale_path), tok.prepare(chorale_path)
    seq_base = base.bar_infill(piece_base, 1, (3, 6))
    seq_bpe = tok.bar_infill(piece_bpe, 1, (3, 6))
    assert tok.codec.decode(seq_bpe.ids) == seq_base.ids
    assert len(seq_bpe.ids) < len(seq_base.ids)


def test_same_bar_same_ids_in_every_context(trained, chorale_path):
    """The canonical encoding: a bar in a context track and in the section gets identical ids."""
    _, _, tok = trained
    enc = tok.encode(tok.prepare(chorale_path))
    seq = tok.bar_infill(enc, 2, (4, 5))
    header, body = enc.bars[2][4]
    assert seq.target[: len(body)] == list(body)
    assert seq.prompt[-len(header) - 8 : -8] == list(header)


def test_trained_tokenizer_round_trips_through_json(trained, tmp_path, chorale_path):
    _, _, tok = trained
    loaded = InfillTokenizer.load(tok.save(tmp_path / "bpe.json"))
    assert loaded.codec.pieces == tok.codec.pieces
    piece = loaded.prepare(chorale_path)
    assert loaded.bar_infill(piece, 0, (1, 3)).ids == tok.bar_infill(tok.prepare(chorale_path), 0, (1, 3)).ids


def test_too_small_vocabulary_is_refused(trained):
    base, words, _ = trained
    with pytest.raises(MidiRwkvError, match="must exceed"):
        train_bpe(base, words, vocab_size=600, progress=False)


def test_midi_files_finds_files_recursively_and_rejects_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.mid").write_bytes(b"")
    (tmp_path / "a" / "y.MIDI").write_bytes(b"")
    (tmp_path / "a" / "notes.txt").write_text("")
    assert [p.name for p in midi_files(tmp_path)] == ["x.mid", "y.MIDI"]
    with pytest.raises(MidiRwkvError):
        midi_files(tmp_path / "missing")


def test_unreadable_files_are_skipped_and_counted(trained):
    _, words, _ = trained  # gathered from the fixtures folder
    assert words.files == 1 and words.skipped == {"MidiFileError": 3, "EmptyScoreError": 1}


def test_vocabulary_sweep_reports_fewer_tokens_for_larger_vocabularies():
    from midi_rwkv.data.vocabulary import train_from_corpora

    tok, stats = train_from_corpora([f"folder:{FIXTURES}"], vocab_size=800, progress=False, sweep=[700, 900])
    sizes = [row["vocab_size"] for row in stats["sweep"]]
    tokens = [row["tokens"] for row in stats["sweep"]]
    assert sizes == [700, 800, 900] and tok.vocab_size == 800
    assert tokens[0] >= tokens[1] >= tokens[2] and tokens[1] == stats["bpe_tokens"]
    assert stats["sweep"][0]["compression"] == pytest.approx(stats["base_tokens"] / tokens[0], rel=1e-3)
