"""Shared fixtures: the base tokenizer and small scores built in code (no downloads, no shared data)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track
from tqdm import tqdm

from midi_rwkv.tokenizer import InfillTokenizer

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TPQ = 480

# tqdm's default lock is a multiprocessing lock, shared by every process forked after it exists. mutmut
# (scripts/mutation.sh) forks one test process per mutant from one that already ran the tests; a process killed by
# its timeout while inside that lock left it held, and every later mutant whose tests show a progress bar slept on
# it for good (using no CPU, so never timed out: the run stalled). The tests run in one process: a thread lock is all
# they need.
tqdm.set_lock(threading.RLock())


@pytest.fixture(scope="session")
def tok() -> InfillTokenizer:
    return InfillTokenizer()


@pytest.fixture(scope="session")
def tiny_model():
    """The tiny model for the base vocabulary, perturbed off the paper's init (which zeroes the output projections)
    so that every path matters. Shared: tests must not change its weights."""
    import torch

    from midi_rwkv.model import RWKV7, init_weights, tiny_config

    torch.manual_seed(0)
    model = init_weights(RWKV7(tiny_config(663)), seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def make_score(time_signatures, tracks, tempos=((0, 120.0),), tpq: int = TPQ) -> Score:
    """A score from plain tuples.

    Args:
        time_signatures: (tick, numerator, denominator) items.
        tracks: (program, is_drum, [(time, duration, pitch, velocity), ...]) items.
        tempos: (tick, qpm) items.
    """
    score = Score(tpq)
    for time, num, den in time_signatures:
        score.time_signatures.append(TimeSignature(time, num, den))
    for time, qpm in tempos:
        score.tempos.append(Tempo(time, qpm))
    for index, (program, is_drum, notes) in enumerate(tracks):
        track = Track(name=f"track{index}", program=program, is_drum=is_drum)
        for time, duration, pitch, velocity in notes:
            track.notes.append(Note(time, duration, pitch, velocity))
        score.tracks.append(track)
    return score


def bar_notes(bar_ticks: int, counts: list[int], pitch: int = 60, duration: int = TPQ // 2):
    """``counts[i]`` eighth notes at distinct onsets in bar ``i`` (one note per onset)."""
    notes = []
    for bar, count in enumerate(counts):
        for k in range(count):
            notes.append((bar * bar_ticks + k * (TPQ // 2), duration, pitch + k % 5, 80))
    return notes


@pytest.fixture
def waltz() -> Score:
    """3/4, 8 bars: a melody with known notes per bar, a chordal bass, and a tempo change at bar 4."""
    bar = 3 * TPQ
    melody = bar_notes(bar, [3, 2, 4, 1, 0, 6, 5, 3])
    bass = [(b * bar, bar, 48, 70) for b in range(8)] + [(b * bar, bar, 55, 70) for b in range(8)]
    return make_score([(0, 3, 4)], [(0, False, melody), (32, False, bass)], tempos=[(0, 90.0), (4 * bar, 140.0)])


@pytest.fixture
def jig() -> Score:
    """6/8, 6 bars, two tracks."""
    bar = 3 * TPQ
    melody = [(b * bar + k * TPQ // 2, TPQ // 2, 67 + k, 90) for b in range(6) for k in range(6)]
    chords = [(b * bar, 3 * TPQ // 2, p, 60) for b in range(6) for p in (55, 59, 62)]
    return make_score([(0, 6, 8)], [(40, False, melody), (0, False, chords)])


@pytest.fixture
def band() -> Score:
    """4/4, 6 bars: piano, an empty track, drums, and a program-127 track the vocabulary lacks."""
    bar = 4 * TPQ
    piano = [(b * bar + k * TPQ, TPQ, 60 + k, 80) for b in range(6) for k in range(4)]
    drums = [(b * bar + k * TPQ // 2, TPQ // 4, 36 if k % 2 == 0 else 38, 100) for b in range(6) for k in range(8)]
    gunshot = [(0, TPQ, 60, 80)]
    return make_score([(0, 4, 4)], [(0, False, piano), (0, False, []), (0, True, drums), (127, False, gunshot)])


@pytest.fixture
def breve() -> Score:
    """4/2 (not in the vocabulary: written as 4/4 + 4/4), 4 bars, then 3/2 (written as 6/4) for 2 bars."""
    bar42, bar32 = 8 * TPQ, 6 * TPQ
    notes = [(b * bar42 + k * 2 * TPQ, 2 * TPQ, 62 + k, 80) for b in range(4) for k in range(4)]
    notes += [(4 * bar42 + b * bar32 + k * 2 * TPQ, 2 * TPQ, 57 + k, 80) for b in range(2) for k in range(3)]
    return make_score([(0, 4, 2), (4 * bar42, 3, 2)], [(0, False, notes)])


@pytest.fixture
def chorale_path() -> Path:
    return FIXTURES / "bach_bwv66.6.mid"


def note_tuples(track, start=None, end=None):
    """Sorted (time, duration, pitch, velocity) of a track's notes with onsets in [start, end)."""
    return sorted(
        (n.time, n.duration, n.pitch, n.velocity)
        for n in track.notes
        if (start is None or n.time >= start) and (end is None or n.time < end)
    )
