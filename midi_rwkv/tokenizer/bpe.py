"""BPE training over the canonical words of pieces (bar headers and bar bodies); corpora feed it from
``data.vocabulary``.

Like the original (docs/original-release.md#canonical-encoding), BPE learns on sequences without
controls and never merges across a bar. Unlike it, a bar's header and body are separate words, so no
learned token spans the point where bar controls go, and there is no Metaspace ``▁`` marker: every
learned token decodes to at least one base token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from tokenizers import AddedToken, Tokenizer, models, trainers
from tqdm import tqdm

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer.infill_tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.remi import encode_tracks
from midi_rwkv.tokenizer.score import Piece


@dataclass
class CorpusWords:
    """Words gathered from a corpus, with what was skipped and why."""

    words: Counter = field(default_factory=Counter)  # word text -> count
    files: int = 0
    base_tokens: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> files


def add_piece_words(words: CorpusWords, tokenizer: InfillTokenizer, piece: Piece) -> None:
    """Add one prepared piece's canonical words (bar headers and bodies of every track) to ``words``."""
    byte = tokenizer.miditok._vocab_base_id_to_byte
    tracks = encode_tracks(piece, tokenizer.codec.vocab)  # first: a piece that fails to encode adds nothing
    words.files += 1
    for track in tracks:
        words.base_tokens += 3  # Track_Start Program Track_End
        for header, body in track.bars:
            for word in (header, body):
                if word:
                    words.words["".join(byte[i] for i in word)] += 1
                    words.base_tokens += len(word)


def _repeat(words: Counter) -> Iterator[str]:
    for word, count in words.items():
        for _ in range(count):
            yield word


def train_bpe(
    tokenizer: InfillTokenizer, words: CorpusWords, vocab_size: int = 16000, progress: bool = True
) -> InfillTokenizer:
    """A new tokenizer with the same base vocabulary and a BPE model learned on ``words``."""
    miditok = tokenizer.miditok
    base = len(miditok.vocab)
    if vocab_size <= base:
        raise MidiRwkvError(f"vocabulary size {vocab_size} must exceed the {base} base tokens")
    byte = miditok._vocab_base_id_to_byte
    alphabet = {byte[i]: i for i in range(base)}
    model = Tokenizer(models.BPE(vocab=alphabet, merges=[], continuing_subword_prefix="", end_of_word_suffix=""))
    specials = [AddedToken(byte[miditok.vocab[t]]) for t in miditok.special_tokens]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        show_progress=progress,
        special_tokens=specials,
        initial_alphabet=list(alphabet),
        continuing_subword_prefix="",
        end_of_word_suffix="",
    )
    model.train_from_iterator(_repeat(words.words), trainer=trainer, length=sum(words.words.values()))
    trained = type(miditok)(miditok.config)
    trained._model = model
    trained._MusicTokenizer__create_vocab_learned_bytes_to_tokens()  # MidiTok's own decode table
    return InfillTokenizer(trained)  # the codec checks that base ids were kept


def count_bpe_tokens(tokenizer: InfillTokenizer, words: CorpusWords) -> int:
    """Tokens the corpus takes once encoded with ``tokenizer`` (atomic tokens count as one each)."""
    texts = list(words.words)
    encoded = tokenizer.miditok._model.encode_batch([[w] for w in texts], is_pretokenized=True)
    in_words = sum(len(w) * n for w, n in words.words.items())
    return words.base_tokens - in_words + sum(len(e.ids) * words.words[w] for w, e in zip(texts, encoded))


def vocab_sweep(base: InfillTokenizer, words: CorpusWords, sizes: list[int], progress: bool = True) -> list[dict]:
    """Corpus tokens, tokens per piece and compression over the base vocabulary, for each vocabulary size."""
    rows = []
    for size in tqdm(sizes, desc="vocabulary sweep", unit="size", disable=not progress):
        tok = train_bpe(base, words, size, progress=False)
        tokens = count_bpe_tokens(tok, words)
        rows.append(
            {
                "vocab_size": size,
                "tokens": tokens,
                "tokens_per_file": round(tokens / words.files, 1),
                "compression": round(words.base_tokens / tokens, 3),
            }
        )
    return rows
