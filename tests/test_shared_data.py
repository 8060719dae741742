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


def _real_band():
    """A real multi-track piece with drums: a Nottingham 4/4 tune (melody, chords) over a Groove 4/4 beat, looped
    and laid on the tune's beats (the shared data has no band song with drums of its own)."""
    from symusic import Note, Score, Track

    tune = Score(str(SHARED_DATA / "nottingham" / "ashover10.mid"))
    beat = Score(str(SHARED_DATA / "groove" / "drummer1" / "eval_session" / "1_funk-groove1_138_beat_4-4.mid"))
    scale = tune.ticks_per_quarter / beat.ticks_per_quarter
    loop = 16 * tune.ticks_per_quarter  # four bars of the beat, repeated
    drums = Track(name="Drums", program=0, is_drum=True)
    hits = [n for n in beat.tracks[0].notes if n.time * scale < loop]
    for start in range(0, tune.end(), loop):
        for n in hits:
            time = start + round(n.time * scale)
            if time < tune.end():
                drums.notes.append(Note(time, max(1, round(n.duration * scale)), n.pitch, n.velocity))
    tune.tracks.append(drums)
    return tune


def _songs():
    from midi_rwkv.data.corpora import Pop909Corpus

    pop = Pop909Corpus(SHARED_DATA / "pop909")
    return {"pop909-001": pop.load(0), "band": _real_band()}


@pytest.mark.parametrize("song", ["pop909-001", "band"])
def test_every_kind_of_request_on_real_songs_changes_only_what_it_asks(tok, song):
    import torch

    from midi_rwkv.inference import BarFill, Infiller, NewTrack, TrackFill
    from midi_rwkv.inference.constraints import TokenTables
    from midi_rwkv.inference.generator import Generator
    from midi_rwkv.model import RWKV7, init_weights, tiny_config
    from tests.inference.test_inference import BarsAtOnce

    score = _songs()[song]
    piece = tok.prepare(score, song)
    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config(tok.vocab_size)), seed=0).eval()
    bar_id = int(TokenTables.build(tok.codec).starts_bar.nonzero()[0])
    infiller = Infiller(Generator(BarsAtOnce(model, bar_id)), tok, structure="off")
    last = len(score.tracks) - 1  # the band's drums; POP909's piano
    fills = [BarFill(last, (4, 8)), TrackFill(1), NewTrack(program=33), NewTrack(is_drum=True)]
    (c,) = infiller.fill(piece, fills, n=1, seed=0)
    assert [s.generation.stopped for s in c.steps] == ["done"] * 4
    assert len(c.score.tracks) == len(score.tracks) + 2
    lo, hi = piece.bars[4].start, piece.bars[7].end
    for i, (a, b) in enumerate(zip(score.tracks, c.score.tracks)):
        assert (a.program, a.is_drum) == (b.program, b.is_drum)
        if i == last:
            assert note_tuples(a, None, lo) == note_tuples(b, None, lo) and note_tuples(a, hi) == note_tuples(b, hi)
        elif i != 1:
            assert note_tuples(a) == note_tuples(b), i
    assert c.score.tracks[-2].program == 33 and c.score.tracks[-1].is_drum
