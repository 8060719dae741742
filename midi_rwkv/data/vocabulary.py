"""Learning the BPE vocabulary over corpora (``midi-rwkv train-tokenizer``): pieces -> words -> BPE."""

from __future__ import annotations

import time
from collections.abc import Iterable

from tqdm import tqdm

from midi_rwkv.data.corpora import Corpus, open_corpus
from midi_rwkv.data.prefilter import split_subset
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.bpe import CorpusWords, add_piece_words, count_bpe_tokens, train_bpe, vocab_sweep


def gather_words(tokenizer: InfillTokenizer, corpora: Iterable[Corpus], progress: bool = True) -> CorpusWords:
    """Tokenize every piece into canonical words (skipping, and counting, pieces that fail)."""
    out = CorpusWords()
    items = [(corpus, i) for corpus in corpora for i in range(len(corpus))]
    for corpus, i in tqdm(items, desc="tokenizing", unit="piece", disable=not progress):
        try:
            add_piece_words(out, tokenizer, tokenizer.prepare(corpus.load(i), corpus.ids[i]))
        except MidiRwkvError as err:
            out.skipped[type(err).__name__] += 1
    return out


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
