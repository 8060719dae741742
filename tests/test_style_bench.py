"""bench/style_report.py's histograms: what a span's pitch classes and onset positions count, and the distance."""

import importlib.util
import math
from pathlib import Path

import numpy as np

from midi_rwkv.metrics.region import Region, track_notes
from midi_rwkv.tokenizer.metre import Bar
from tests.conftest import TPQ, make_score

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("style_report", ROOT / "bench" / "style_report.py")
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

BAR = 4 * TPQ
BARS = (Bar(0, BAR, 4, 4), Bar(BAR, 2 * BAR, 4, 4))


def test_distance_is_total_variation_and_nan_when_a_histogram_is_empty():
    a, b = np.array([2.0, 0.0]), np.array([0.0, 5.0])
    assert report.distance(a, a * 3) == 0.0
    assert report.distance(a, b) == 1.0
    assert report.distance(np.array([1.0, 1.0]), a) == 0.5
    assert math.isnan(report.distance(np.zeros(2), a))


def test_onset_positions_fold_every_bar_onto_the_quarter_note():
    # on the beat, an eighth after it (bar 1), and a sixteenth after beat 3 of bar 2: cells 0, 4 and 2 of 8
    notes = [(0, 240, 60, 80), (TPQ + TPQ // 2, 240, 62, 80), (BAR + 2 * TPQ + TPQ // 4, 120, 64, 80)]
    score = make_score([(0, 4, 4)], [(0, False, notes)])
    counts = report.onset_positions(track_notes(score, 0), BARS, TPQ)
    assert counts.tolist() == [1, 0, 1, 0, 1, 0, 0, 0]


def test_the_reference_leaves_out_only_the_span_of_its_track():
    class Piece:  # what piece_histograms reads of a tokenizer Piece
        original = make_score([(0, 4, 4)], [(0, False, [(0, TPQ, 60, 80), (BAR, TPQ, 61, 80)]),
                                            (0, False, [(BAR, TPQ, 62, 80)])])
        track_ids, bars = [0, 1], list(BARS)

    span = Region(0, (BARS[1],), TPQ)
    reference = report.piece_histograms(Piece, span)
    assert reference["pc"][[0, 1, 2]].tolist() == [1, 0, 1]  # C# (track 0, bar 2) is the span's, left out
    assert report.span_histograms(Piece.original, span)["pc"][1] == 1
