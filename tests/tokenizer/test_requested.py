"""The controls a request asks for, per tokenizer bar: requests name the song's real bars, and a real bar the
tokenizer writes as several (7/4 as 4/4 + 3/4) shares its density among them."""

from __future__ import annotations

import pytest

from midi_rwkv.errors import ControlError
from midi_rwkv.tokenizer import InfillTokenizer
from midi_rwkv.tokenizer.requested import ControlRequest
from tests.conftest import TPQ, make_score

BAR = 7 * TPQ  # a 7/4 bar


@pytest.fixture(scope="module")
def tok():
    return InfillTokenizer()


def _piece(tok, drums: bool = False):
    """Four 7/4 bars; each beat of track 0 a note (drums: a kick)."""
    notes = [(b * BAR + k * TPQ, TPQ, 36 if drums else 60 + k, 80) for b in range(4) for k in range(7)]
    piece = tok.prepare(make_score([(0, 7, 4)], [(0, drums, notes)]))
    assert piece.num_bars == 4 and piece.first_token_bar == [0, 2, 4, 6, 8]
    return piece


def test_without_a_request_the_span_keeps_the_original_bars_controls(tok):
    piece = _piece(tok)
    enc = tok.encode(piece)
    assert tok.requested_controls(piece, 0, (1, 3)) == enc.bar_controls(0, (2, 6))


def test_a_real_bar_s_density_is_shared_by_its_tokenizer_bars(tok):
    piece = _piece(tok)
    asked = tok.requested_controls(piece, 0, (1, 3), ControlRequest(density=[6, 10], polyphony=(1, 2)))
    assert [c.density for c in asked] == [3, 3, 5, 5] and {c.polyphony for c in asked} == {(1, 2)}
    assert [c.density for c in tok.requested_controls(piece, 0, (1, 3), ControlRequest(density=[8]))] == [4] * 4
    with pytest.raises(ControlError, match="3 values for 2 bars"):
        tok.requested_controls(piece, 0, (1, 3), ControlRequest(density=[1, 2, 3]))


def test_a_drum_track_takes_density_only(tok):
    piece = _piece(tok, drums=True)
    assert [c.density for c in tok.requested_controls(piece, 0, (0, 1), ControlRequest(density=[4]))] == [2, 2]
    with pytest.raises(ControlError, match="drum track"):
        tok.requested_controls(piece, 0, (0, 1), ControlRequest(polyphony=(1, 2)))
