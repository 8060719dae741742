import pytest

from midi_rwkv.errors import UnsupportedMetreError
from midi_rwkv.tokenizer.metre import decompose, real_bars
from tests.conftest import TPQ, make_score

PAPER = frozenset({(3, 8), (12, 8), (6, 8), (5, 4), (6, 4), (3, 4), (2, 4), (1, 4), (4, 4)})


@pytest.mark.parametrize(
    "metre, parts",
    [
        ((4, 4), ((4, 4),)),
        ((6, 8), ((6, 8),)),
        ((2, 2), ((4, 4),)),
        ((3, 2), ((6, 4),)),
        ((4, 2), ((4, 4), (4, 4))),
        ((4, 8), ((2, 4),)),
        ((9, 8), ((6, 8), (3, 8))),
        ((7, 4), ((4, 4), (3, 4))),
        ((5, 2), ((5, 4), (5, 4))),
    ],
    ids=lambda v: f"{v[0]}/{v[1]}" if isinstance(v[0], int) else "",
)
def test_decompose_writes_real_bars_with_vocabulary_metres(metre, parts):
    assert decompose(*metre, PAPER) == parts


@pytest.mark.parametrize("metre", [(1, 8), (3, 16), (5, 3)], ids=["1/8", "3/16", "5/3"])
def test_unwritable_metres_raise(metre):
    with pytest.raises(UnsupportedMetreError):
        decompose(*metre, PAPER)


def test_real_bars_follow_changes_and_default_to_4_4():
    # no signature at 0 -> 4/4; 3/4 from bar 2; a 2/4 event inside a bar applies at the next bar line
    score = make_score([(8 * TPQ, 3, 4), (12 * TPQ, 2, 4)], [(0, False, [(0, 1, 60, 80)])])
    bars = real_bars(score, 16 * TPQ)
    assert [(b.start // TPQ, b.time_signature) for b in bars[:5]] == [
        (0, "4/4"), (4, "4/4"), (8, "3/4"), (11, "3/4"), (14, "2/4"),
    ]
    assert bars[-1].start <= 16 * TPQ < bars[-1].end
