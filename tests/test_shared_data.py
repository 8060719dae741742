"""Real-data checks on a few files of ../shared/data; skipped where that folder is absent."""

import random

import pytest

from midi_rwkv.tokenizer import load_score
from tests.conftest import SHARED_DATA, note_tuples

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not (SHARED_DATA / "pop909").is_dir(), reason="../shared/data is not available"),
]


def _files():
    if not (SHARED_DATA / "pop909").is_dir():
        return []
    pop = sorted((SHARED_DATA / "pop909").glob("*/*.mid"))[:4]
    poly = sorted((SHARED_DATA / "music21_poly").glob("*.mid"))
    return pop + random.Random(0).sample(poly, 4)


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.name)
def test_real_files_infill_and_merge_back_unchanged_elsewhere(tok, path):
    piece = tok.prepare(path)
    rng = random.Random(path.name)
    for _ in range(3):
        track = rng.choice(piece.track_ids)
        start = rng.randrange(piece.num_bars)
        end = min(piece.num_bars, start + rng.choice([1, 2, 4]))
        seq = tok.bar_infill(piece, track, (start, end), context_bars=8, max_len=2048)
        assert len(seq.ids) <= 2048
        out, report = tok.merge(piece, seq, seq.target)
        assert report.bars_generated == report.bars_expected
        lo, hi = piece.bars[start].start, piece.bars[end - 1].end
        original = load_score(path)
        for a, b in zip(original.tracks, out.tracks):
            assert note_tuples(a, None, lo) == note_tuples(b, None, lo)
            assert note_tuples(a, hi) == note_tuples(b, hi)
