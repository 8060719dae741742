"""BPE training on a folder of MIDI files, over the canonical words (bar headers and bar bodies).

Like the original (spec §1.5), BPE learns on sequences without controls and never merges across a
bar. Unlike it, a bar's header and body are separate words, so no learned token spans the point
where bar controls go, and there is no Metaspace ``▁`` marker: every learned token decodes to at
least one base token.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tokenizers import AddedToken, Tokenizer, models, trainers
from tqdm import tqdm

from midi_rwkv.data.corpora import Corpus, open_corpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer.infill_tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.remi import encode_tracks

@dataclass
class CorpusWords:
    """Words gathered from a corpus, with what was skipped and why."""

    words: Counter = field(default_factory=Counter)  # word text -> count
    files: int = 0
    base_tokens: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> files


def gather_words(tokenizer: InfillTokenizer, corpora: Iterable[Corpus], progress: bool = True) -> CorpusWords:
    """Tokenize every piece into canonical words (skipping, and counting, pieces that fail)."""
    byte = tokenizer.miditok._vocab_base_id_to_byte
    out = CorpusWords()
    items = [(corpus, i) for corpus in corpora for i in range(len(corpus))]
    for corpus, i in tqdm(items, desc="tokenizing", unit="piece", disable=not progress):
        try:
            piece = tokenizer.prepare(corpus.load(i), corpus.ids[i])
            tracks = encode_tracks(piece, tokenizer.codec.vocab)
        except MidiRwkvError as err:
            out.skipped[type(err).__name__] += 1
            continue
        out.files += 1
        for track in tracks:
            out.base_tokens += 3  # Track_Start Program Track_End
            for header, body in track.bars:
                for word in (header, body):
                    if word:
                        out.words["".join(byte[i] for i in word)] += 1
                        out.base_tokens += len(word)
    return out


def _repeat(words: Counter) -> Iterator[str]:
    for word, count in words.items():
        for _ in range(count):
            yield word


def train_bpe(tokenizer: InfillTokenizer, words: CorpusWords, vocab_size: int = 16000, progress: bool = True) -> InfillTokenizer:
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


def train_from_corpora(
    specs: list[str],
    vocab_size: int = 16000,
    limit: int | None = None,
    progress: bool = True,
    split: str | None = None,
    sweep: Iterable[int] = (),
) -> tuple[InfillTokenizer, dict]:
    """Gather words from corpora (``pop909:PATH``, folders, ...) and train BPE; returns the tokenizer and statistics.

    ``limit`` caps the pieces taken from each corpus; ``split`` keeps only the pieces training puts in
    that split (e.g. ``train``, so that no test piece shapes the vocabulary). Each size in ``sweep`` is
    also trained, and its tokens per piece reported in ``stats["sweep"]``, to choose a size by measurement.
    """
    from midi_rwkv.data.prefilter import split_subset  # the data package imports this one

    base = InfillTokenizer()
    corpora = [open_corpus(spec) for spec in specs]
    if split is not None:
        corpora = [split_subset(corpus, split) for corpus in corpora]
    if limit is not None:
        for corpus in corpora:
            corpus.ids = corpus.ids[:limit]
    if not sum(map(len, corpora)):
        raise MidiRwkvError(f"no MIDI files in {', '.join(specs)}")
    start = time.perf_counter()
    words = gather_words(base, corpora, progress)
    gathered = time.perf_counter()
    if not words.words:
        raise MidiRwkvError("no file could be tokenized; nothing to learn from")
    trained = train_bpe(base, words, vocab_size, progress)
    done = time.perf_counter()
    bpe_tokens = count_bpe_tokens(trained, words)
    stats = {
        "files": sum(map(len, corpora)),
        "split": split,
        "tokenized": words.files,
        "skipped": dict(words.skipped),
        "distinct_words": len(words.words),
        "base_tokens": words.base_tokens,
        "bpe_tokens": bpe_tokens,
        "base_tokens_per_file": round(words.base_tokens / words.files, 1),
        "bpe_tokens_per_file": round(bpe_tokens / words.files, 1),
        "vocab_size": trained.vocab_size,
        "seconds_tokenizing": round(gathered - start, 1),
        "seconds_training": round(done - gathered, 1),
    }
    if sweep:
        stats["sweep"] = vocab_sweep(base, words, sorted(set(sweep) | {vocab_size}), progress)
    return trained, stats


def vocab_sweep(base: InfillTokenizer, words: CorpusWords, sizes: list[int], progress: bool = True) -> list[dict]:
    """Corpus tokens, tokens per piece and compression over the base vocabulary, for each vocabulary size."""
    rows = []
    for size in tqdm(sizes, desc="vocabulary sweep", unit="size", disable=not progress):
        tok = train_bpe(base, words, size, progress=False)
        tokens = count_bpe_tokens(tok, words)
        rows.append({"vocab_size": size, "tokens": tokens, "tokens_per_file": round(tokens / words.files, 1),
                     "compression": round(words.base_tokens / tokens, 3)})
    return rows
