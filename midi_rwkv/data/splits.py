"""Train / validation / test splits: a hash of each piece's (song's) id with a seed, so they stay put as a corpus grows.

Shared by the prefilter (MIDI corpora), the corpus manifest and the compiled corpus, so a piece is in the same split
whichever way training reads it.
"""

from __future__ import annotations

import hashlib

from midi_rwkv.errors import MidiRwkvError

SPLITS = ("train", "validation", "test")
SPLIT_RATIOS = (0.9, 0.05, 0.05)  # train, validation, test
SPLIT_SEED = 0  # the base model's split (training's and compile-corpus's default --seed); evaluate draws from it


def split_of(piece_id: str, seed: int, ratios: tuple[float, float, float]) -> str:
    """Deterministic split of a piece from a hash of its id."""
    u = int(hashlib.sha1(f"{seed}:{piece_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < ratios[0]:
        return "train"
    return "validation" if u < ratios[0] + ratios[1] else "test"


def usable_splits(splits: dict[str, list[int]], name: str, min_pieces: int = 10
                  ) -> tuple[list[int], list[int], list[int]]:
    """(train, validation, test) piece indices; a corpus too small to split uses all its pieces for each."""
    kept = sorted(i for ids in splits.values() for i in ids)
    if not kept:
        raise MidiRwkvError(f"{name}: no usable piece (see the manifest for why each was skipped)")
    if len(kept) < min_pieces or not splits["train"]:
        print(f"warning: only {len(kept)} usable pieces, too few to split; training and evaluating on all of them")
        return kept, kept, kept
    return (
        splits["train"],
        splits["validation"] or splits["train"][:1],
        splits["test"] or splits["validation"],
    )
