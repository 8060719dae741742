"""What a tuning run is measured on: pieces (or bars) it never trained on, and one line on whether it generalised.

``tune`` takes its held-out pieces from the corpus split (by a hash of each song, or a split file that names them);
``tune-style`` holds out a share of the composer's own pieces, or the last bars of a single piece.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from symusic import Score

from midi_rwkv.data.corpora import Corpus
from midi_rwkv.data.splits import SPLITS
from midi_rwkv.errors import MidiRwkvError

MIN_BARS_TO_SPLIT = 10  # a single piece shorter than this keeps all its bars for training (nothing is held out)


def held_out_pieces(ids: list[str], share: float, seed: int) -> list[int]:
    """Positions in ``ids`` to hold out: ``round(share * n)`` of them, at least 1 and at most n - 1 (none when n < 2).

    The choice ranks the pieces by a hash of (seed, id), so it does not depend on the order of the files and a
    piece stays held out when others are added.
    """
    if len(ids) < 2:
        return []
    count = min(len(ids) - 1, max(1, round(share * len(ids))))
    rank = sorted(range(len(ids)), key=lambda i: hashlib.sha1(f"{seed}:{ids[i]}".encode()).hexdigest())
    return sorted(rank[:count])


class BarsCorpus(Corpus):
    """One piece of another corpus cut at a bar line: piece 0 is its bars before the cut, piece 1 the bars after.

    Each part starts at tick 0 with the time signature and tempo in force where it begins.
    """

    def __init__(self, corpus: Corpus, index: int, spans: list[tuple[int, int]], bars: list[tuple[int, int]]):
        """``spans``: (start, end) ticks of each part; ``bars``: its (first, last) bar, counted from 1, for its id."""
        self.corpus, self.index, self.spans = corpus, index, spans
        self.name = f"{corpus.name}[{corpus.ids[index]} by bars]"
        self.label = corpus.label
        super().__init__([f"{corpus.ids[index]} (bars {a}-{b})" for a, b in bars])

    def load(self, index: int) -> Score:
        start, end = self.spans[index]
        return self.corpus.load(self.index).clip(start, end, clip_end=False).shift_time(-start)

    def song(self, index: int) -> str:
        return self.corpus.song(self.index)


def hold_out_bars(corpus: Corpus, index: int, bar_ticks: list[tuple[int, int]], share: float) -> BarsCorpus | None:
    """The piece at ``index`` as two parts, its last ``share`` of bars (at least 2) held out; None when it has fewer
    than :data:`MIN_BARS_TO_SPLIT` bars. ``bar_ticks``: (start, end) of every bar, in the piece's own ticks."""
    n = len(bar_ticks)
    if n < MIN_BARS_TO_SPLIT:
        return None
    cut = n - max(2, round(share * n))
    spans = [(bar_ticks[0][0], bar_ticks[cut][0]), (bar_ticks[cut][0], bar_ticks[-1][1])]
    return BarsCorpus(corpus, index, spans, [(1, cut), (cut + 1, n)])


def verdict(before: float, after: float, min_gain: float, where: str) -> tuple[bool, str]:
    """(generalised?, one line): the loss on held-out music fell by more than ``min_gain`` nats per token, or not."""
    gain = before - after
    numbers = f"held-out loss {before:.3f} -> {after:.3f} ({-gain:+.3f} nats/token) on {where}"
    if gain > min_gain:
        return True, f"generalised: {numbers}, more than the margin of {min_gain:g}"
    return False, (
        f"did not generalise: {numbers}, not more than the margin of {min_gain:g}, so nothing shows that it carries "
        "over to music it did not train on"
    )


def read_split_file(path: str | Path, corpus: Corpus) -> dict[str, list[int]]:
    """The corpus indices of each split named in a JSON file ``{"train": [ids], "validation": [...], "test": [...]}``.

    Raises:
        MidiRwkvError: unreadable file, an id that is not in the corpus, no train or test piece, or a piece in two
            splits.
    """
    try:
        named = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise MidiRwkvError(f"{path}: not a readable split file ({err})") from None
    if not isinstance(named, dict) or not all(isinstance(named.get(s, []), list) for s in SPLITS):
        raise MidiRwkvError(f"{path}: expected {{\"train\": [ids], \"validation\": [ids], \"test\": [ids]}}")
    where = {piece: i for i, piece in enumerate(corpus.ids)}
    unknown = [piece for s in SPLITS for piece in named.get(s, []) if piece not in where]
    if unknown:
        raise MidiRwkvError(f"{path}: {len(unknown)} piece ids are not in {corpus.name} (the first: {unknown[0]!r})")
    for s in ("train", "test"):
        if not named.get(s):
            raise MidiRwkvError(f"{path}: the {s} split names no piece")
    seen: dict[str, str] = {}
    for s in SPLITS:
        for piece in named.get(s, []):
            if seen.setdefault(piece, s) != s:
                raise MidiRwkvError(f"{path}: piece {piece!r} is in both the {seen[piece]} and the {s} split")
    splits = {s: [where[piece] for piece in named.get(s, [])] for s in SPLITS}
    trained = {corpus.song(i) for i in splits["train"]}
    shared = sorted(trained & {corpus.song(i) for s in ("validation", "test") for i in splits[s]})
    if shared:
        raise MidiRwkvError(f"{path}: song {shared[0]!r} has pieces in the train split and a held-out one")
    return splits
