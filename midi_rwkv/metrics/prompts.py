"""Evaluation prompts: which piece, track and bars to infill (docs/original-release.md#evaluation-prompts,
without its quirks).

Pieces come from the test split of a corpus (the same hash split training uses, so none of them was
trained on), drawn with a seeded shuffle and without replacement: one prompt per piece. The span is
N real bars with C bars of context on each side where the piece allows (spans are drawn among the
starts that have the full context, else the widest available). Every infilled bar and the left
context must have notes in the original track; otherwise the piece is skipped.
"""

from __future__ import annotations

import random
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


def _onsets_per_bar(piece, track: int) -> np.ndarray:
    times = piece.original.tracks[track].notes.numpy()["time"]
    edges = np.array([bar.start for bar in piece.bars] + [piece.bars[-1].end])
    return np.histogram(times, bins=edges)[0]


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
    corpus = open_corpus(spec) if split == "all" else split_subset(open_corpus(spec), split)
    if not len(corpus):
        raise MidiRwkvError(f"{spec}: no pieces in its {split} split")
    rng = random.Random(seed)
    order = list(range(len(corpus)))
    rng.shuffle(order)
    prompts = []
    with tqdm(total=count, desc="choosing prompts", unit="prompt", disable=not progress) as bar:
        for index in order:
            if len(prompts) == count:
                break
            try:
                piece = tokenizer.prepare(corpus.load(index), corpus.ids[index])
            except MidiRwkvError:
                continue
            tracks = [t for t in piece.track_ids if not piece.original.tracks[t].is_drum] or piece.track_ids
            t = rng.choice(tracks) if track is None else track
            if t not in piece.track_ids or piece.num_bars < max(bars + 1, min_bars):
                continue
            name = corpus.ids[index].replace("/", "_").replace(" ", "_")
            if whole_track:
                if len(piece.track_ids) < 2:
                    continue
                prompts.append(Prompt(f"{len(prompts):03d}-{name}-t{t}-whole", spec, corpus.ids[index], t, 0,
                                      piece.num_bars))
                bar.update()
                continue
            notes = _onsets_per_bar(piece, t)
            full = range(context, piece.num_bars - bars - context + 1)
            starts = list(full) if len(full) else list(range(1, piece.num_bars - bars + 1))
            starts = [s for s in starts if notes[s : s + bars].min() > 0 and notes[max(0, s - context) : s].sum() > 0]
            if not starts:
                continue
            start = rng.choice(starts)
            prompts.append(
                Prompt(f"{len(prompts):03d}-{name}-t{t}-b{start + 1}", spec, corpus.ids[index], t, start, start + bars)
            )
            bar.update()
    return prompts
