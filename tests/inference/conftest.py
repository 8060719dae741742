"""Fixtures shared by the inference tests."""

import pytest

from tests.conftest import TPQ, make_score

BAR = 4 * TPQ


@pytest.fixture
def quartet():
    """8 bars of 4/4: melody, chords, bass and drums, as a band plays them."""
    melody = [(b * BAR + k * TPQ, TPQ, 67 + (b + k) % 5, 90) for b in range(8) for k in range(4)]
    chords = [(b * BAR, 2 * TPQ, p + (b % 2) * 2, 70) for b in range(8) for p in (60, 64, 67)]
    bass = [(b * BAR + k * 2 * TPQ, 2 * TPQ, 36 + (b % 4), 80) for b in range(8) for k in range(2)]
    drums = [(b * BAR + k * TPQ // 2, TPQ // 4, (36, 42, 38, 42)[k % 4], 100) for b in range(8) for k in range(8)]
    return make_score([(0, 4, 4)], [(0, False, melody), (0, False, chords), (33, False, bass), (0, True, drums)])
