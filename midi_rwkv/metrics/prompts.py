"""Evaluation prompts: which piece, track and bars to infill (docs/original-release.md#evaluation-prompts,
without its quirks).

Pieces come from the test split of a corpus (the same hash split training uses, so none of them was
trained on), drawn with a seeded shuffle and without replacement: one prompt per piece. The corpus is a
MIDI corpus (each candidate piece is prepared with MidiTok) or a compiled one (``compiled:FOLDER``: bars and
notes per bar are read from its arrays, and the prompts name the MIDI source each shard was compiled from). The span is
N real bars with C bars of context on each side where the piece allows (spans are drawn among the
starts that have the full context, else the widest available). Every infilled bar and the left
context must have notes in the original track; otherwise the piece is skipped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from midi_rwkv.data.corpora import open_corpus
from midi_rwkv.data.prefilter import split_subset
from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.tokenizer import InfillTokenizer


@dataclass(frozen=True)
class Prompt:
    id: str  # file-name safe, unique
    corpus: str  # corpus spec, e.g. pop909:../shared/data/pop909
    piece: str  # piece id in that corpus
    track: int  # original track index
    start: int  # real bars [start, end), counted from 0
    end: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Candidate:
    """What prompt choice needs to know of a piece."""

    spec: str  # the MIDI corpus it is read from
    piece: str  # its id there
    track_ids: list[int]  # tracks the tokenizer keeps (original indices)
    drums: set[int]
    num_bars: int
    notes: Callable[[int], np.ndarray]  # track -> notes starting in each real bar


def _midi_candidates(spec: str, split: str, tokenizer: InfillTokenizer, rng: random.Random) -> Iterator[_Candidate]:
    corpus = open_corpus(spec) if split == "all" else split_subset(open_corpus(spec), split)
    if not len(corpus):
        raise MidiRwkvError(f"{spec}: no pieces in its {split} split")
    order = list(range(len(corpus)))
    rng.shuffle(order)
    for index in order:
        try:
            piece = tokenizer.prepare(corpus.load(index), corpus.ids[index])
        except MidiRwkvError:
            continue

        def notes(track: int, piece=piece) -> np.ndarray:
            times = piece.original.tracks[track].notes.numpy()["time"]
            edges = np.array([bar.start for bar in piece.bars] + [piece.bars[-1].end])
            return np.histogram(times, bins=edges)[0]

        drums = {t for t in piece.track_ids if piece.original.tracks[t].is_drum}
        yield _Candidate(spec, corpus.ids[index], piece.track_ids, drums, piece.num_bars, notes)


def _compiled_candidates(folder: str, split: str, rng: random.Random) -> Iterator[_Candidate]:
    from midi_rwkv.data.compiled import CompiledCorpus

    corpus = CompiledCorpus(folder)
    order = [i for i in range(len(corpus)) if split == "all" or corpus.splits[i] == split]
    if not order:
        raise MidiRwkvError(f"compiled:{folder}: no pieces in its {split} split")
    rng.shuffle(order)
    for index in order:
        shard, piece = corpus.locate(index)
        facts = shard.piece_facts(piece)
        yield _Candidate(shard.meta["spec"], shard.ids[piece], facts["tracks"], facts["drums"], facts["bars"],
                         facts["notes"])


def choose_prompts(
    spec: str,
    tokenizer: InfillTokenizer,
    count: int,
    bars: int,
    context: int,
    track: int | None = None,
    split: str = "test",
    seed: int = 0,
    progress: bool = True,
    min_bars: int = 0,
    whole_track: bool = False,
) -> list[Prompt]:
    """Up to ``count`` prompts from ``split`` (or ``all``) of the corpus ``spec``.

    ``track`` None draws one per piece; pieces shorter than ``min_bars`` are passed over. ``whole_track``: each
    prompt is the whole track (pieces need another track with notes, the context it is written against).
    """
    rng = random.Random(seed)
    if spec.startswith("compiled:"):
        candidates = _compiled_candidates(spec.removeprefix("compiled:"), split, rng)
    else:
        candidates = _midi_candidates(spec, split, tokenizer, rng)
    prompts = []
    with tqdm(total=count, desc="choosing prompts", unit="prompt", disable=not progress) as bar:
        for c in candidates:
            if len(prompts) == count:
                break
            tracks = [t for t in c.track_ids if t not in c.drums] or c.track_ids
            t = rng.choice(tracks) if track is None else track
            if t not in c.track_ids or c.num_bars < max(bars + 1, min_bars):
                continue
            name = c.piece.replace("/", "_").replace(" ", "_")
            if whole_track:
                if len(c.track_ids) < 2:
                    continue
                prompts.append(Prompt(f"{len(prompts):03d}-{name}-t{t}-whole", c.spec, c.piece, t, 0, c.num_bars))
                bar.update()
                continue
            notes = c.notes(t)
            full = range(context, c.num_bars - bars - context + 1)
            starts = list(full) if len(full) else list(range(1, c.num_bars - bars + 1))
            starts = [s for s in starts if notes[s : s + bars].min() > 0 and notes[max(0, s - context) : s].sum() > 0]
            if not starts:
                continue
            start = rng.choice(starts)
            prompts.append(Prompt(f"{len(prompts):03d}-{name}-t{t}-b{start + 1}", c.spec, c.piece, t, start,
                                  start + bars))
            bar.update()
    return prompts
