"""Prefilter a corpus (cached), split it by piece, and write a manifest of what was kept and why not.

A piece is kept when it loads, has at least ``min_bars`` bars and more than ``min_notes`` notes
(docs/original-release.md#prefilter), and the tokenizer can represent it. Splits hash each piece's song under its
corpus's label (:func:`split_key`) with a seed, so they are deterministic, do not depend on where the data lives, and
stay put when the corpus grows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from midi_rwkv.data.corpora import Corpus, MergedCorpus, SubsetCorpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.data.splits import SPLIT_RATIOS, SPLIT_SEED, SPLITS, split_of, usable_splits
from midi_rwkv.io import atomic_write_json
from midi_rwkv.tokenizer import InfillTokenizer



@dataclass
class Manifest:
    """The prefilter's result: kept piece indices per split, and skipped pieces with reasons."""

    corpus: str
    criteria: dict
    splits: dict[str, list[int]] = field(default_factory=dict)  # split -> corpus indices
    skipped: dict[str, str] = field(default_factory=dict)  # piece id -> reason

    def summary(self) -> dict:
        return {
            "corpus": self.corpus,
            "kept": {name: len(ids) for name, ids in self.splits.items()},
            "skipped": dict(Counter(r.split(":")[0] for r in self.skipped.values())),
        }

    def usable_splits(self, min_pieces: int = 10) -> tuple[list[int], list[int], list[int]]:
        """(train, validation, test); see :func:`midi_rwkv.data.splits.usable_splits`."""
        return usable_splits(self.splits, self.corpus, min_pieces)

    def save(self, path: Path) -> None:
        atomic_write_json(path, asdict(self) | {"summary": self.summary()})

    @classmethod
    def load(cls, path: Path) -> "Manifest":
        data = json.loads(path.read_text())
        data.pop("summary", None)
        return cls(**data)


def split_key(corpus: Corpus, index: int) -> str:
    """The id a piece's split is hashed from: its song under its corpus's label (``pop909/001``), as the compiled
    corpus and the corpus manifest hash it. A merged corpus's songs carry their own corpus's label already."""
    inner = corpus
    while isinstance(inner, SubsetCorpus):
        inner = inner.corpus
    song = corpus.song(index)
    return song if isinstance(inner, MergedCorpus) else f"{corpus.label}/{song}"


def split_pieces(corpus: Corpus, indices, seed: int = SPLIT_SEED, ratios: tuple[float, float, float] = SPLIT_RATIOS
                 ) -> dict[str, list[int]]:
    """``indices`` of ``corpus`` by the split training's hash puts them in (train, validation, test)."""
    splits = {name: [] for name in SPLITS}
    for index in indices:
        splits[split_of(split_key(corpus, index), seed, ratios)].append(index)
    return splits


def split_subset(
    corpus: Corpus, split: str, seed: int = SPLIT_SEED, ratios: tuple[float, float, float] = SPLIT_RATIOS
) -> SubsetCorpus:
    """The pieces of ``corpus`` that training's hash split puts in ``split`` (before any filtering)."""
    if split not in SPLITS:
        raise MidiRwkvError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    return SubsetCorpus(corpus, split_pieces(corpus, range(len(corpus)), seed, ratios)[split], split)


def check_piece(corpus: Corpus, index: int, tokenizer: InfillTokenizer, min_bars: int, min_notes: int) -> str | None:
    """``None`` when the piece is usable, else the reason it is not."""
    try:
        score = corpus.load(index)
        if score.note_num() <= min_notes:
            return f"too few notes: {score.note_num()} <= {min_notes}"
        piece = tokenizer.prepare(score, corpus.ids[index])
        if piece.num_bars < min_bars:
            return f"too few bars: {piece.num_bars} < {min_bars}"
    except MidiRwkvError as err:
        return f"{type(err).__name__}: {err}"
    return None


def prefilter(
    corpus: Corpus,
    tokenizer: InfillTokenizer,
    cache: Path,
    *,
    min_bars: int = 8,
    min_notes: int = 100,
    seed: int = SPLIT_SEED,
    ratios: tuple[float, float, float] = SPLIT_RATIOS,
    progress: bool = True,
) -> Manifest:
    """Filter and split ``corpus``; reuse ``cache``'s filtering when it was made with the same corpus and criteria.

    The split is hashed again from the kept pieces each time (it costs no piece load), so a cache written under an
    older split rule is brought in line rather than reused as it was."""
    criteria = {
        "min_bars": min_bars,
        "min_notes": min_notes,
        "seed": seed,
        "ratios": list(ratios),
        "pieces": hashlib.sha1("\n".join(corpus.ids).encode()).hexdigest(),
    }
    if cache.is_file():
        manifest = Manifest.load(cache)
        if manifest.corpus == corpus.name and manifest.criteria == criteria:
            splits = split_pieces(corpus, sorted(i for ids in manifest.splits.values() for i in ids), seed, ratios)
            if splits != manifest.splits:
                manifest.splits = splits
                manifest.save(cache)
            return manifest
    manifest = Manifest(corpus.name, criteria)
    kept = []
    for index in tqdm(range(len(corpus)), desc="prefilter", unit="piece", disable=not progress):
        reason = check_piece(corpus, index, tokenizer, min_bars, min_notes)
        if reason:
            manifest.skipped[corpus.ids[index]] = reason
        else:
            kept.append(index)
    manifest.splits = split_pieces(corpus, kept, seed, ratios)
    manifest.save(cache)
    return manifest
