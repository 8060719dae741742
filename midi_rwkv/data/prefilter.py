"""Prefilter a corpus (cached), split it by piece, and write a manifest of what was kept and why not.

A piece is kept when it loads, has at least ``min_bars`` bars and more than ``min_notes`` notes
(docs/original-release.md#prefilter), and the tokenizer can represent it. Splits hash each piece id with a seed, so they
are deterministic and stay put when the corpus grows.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from midi_rwkv.data.corpora import Corpus, SubsetCorpus
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.data.splits import SPLIT_RATIOS, SPLITS, split_of, usable_splits
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


def split_subset(
    corpus: Corpus, split: str, seed: int = 0, ratios: tuple[float, float, float] = SPLIT_RATIOS
) -> SubsetCorpus:
    """The pieces of ``corpus`` that training's hash split puts in ``split`` (before any filtering)."""
    if split not in SPLITS:
        raise MidiRwkvError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    keep = [i for i in range(len(corpus)) if split_of(f"{corpus.label}/{corpus.song(i)}", seed, ratios) == split]
    return SubsetCorpus(corpus, keep, split)


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
    seed: int = 0,
    ratios: tuple[float, float, float] = SPLIT_RATIOS,
    progress: bool = True,
) -> Manifest:
    """Filter and split ``corpus``; reuse ``cache`` when it was made with the same corpus and criteria."""
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
            return manifest
    manifest = Manifest(corpus.name, criteria, {name: [] for name in SPLITS})
    for index in tqdm(range(len(corpus)), desc="prefilter", unit="piece", disable=not progress):
        reason = check_piece(corpus, index, tokenizer, min_bars, min_notes)
        if reason:
            manifest.skipped[corpus.ids[index]] = reason
        else:
            manifest.splits[split_of(corpus.song(index), seed, ratios)].append(index)
    manifest.save(cache)
    return manifest
