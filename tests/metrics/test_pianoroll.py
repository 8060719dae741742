"""Piano rolls: zoomed to a window of bars, one collection per track and kind of note, and quick on a band song."""

from __future__ import annotations

import matplotlib.pyplot as plt

from midi_rwkv.metrics.pianoroll import draw, render
from tests.conftest import TPQ, make_score

BAR = 4 * TPQ


def _band(tracks: int = 9, bars: int = 64):
    """``tracks`` tracks of a quarter note on every beat for ``bars`` bars; track t plays around 40 + 6 t, and bar 30
    of track 0 holds one very high note (pitch 120)."""
    parts = []
    for t in range(tracks):
        notes = [(b * BAR + k * TPQ, TPQ, 40 + 6 * t + k, 80) for b in range(bars) for k in range(4)]
        if t == 0:
            notes.append((30 * BAR, TPQ, 120, 80))
        parts.append((t * 8, False, notes))
    return make_score([(0, 4, 4)], parts)


def test_a_window_zooms_time_and_fits_the_pitches_inside_it():
    score = _band(tracks=2)
    changed = score.copy()
    changed.tracks[1].notes[8 * 4].pitch += 1  # one new note in bar 8 of track 1
    fig = draw(score, [("1", changed)], span=(8 * BAR, 10 * BAR), window=(4 * BAR, 14 * BAR))
    try:
        for ax in fig.axes:
            assert ax.get_xlim() == (16.0, 56.0)  # beats of bars 4-14
            low, high = ax.get_ylim()
            assert (low, high) == (38, 51)  # pitches 40-49, 2 of room; bar 30's pitch 120 lies outside the window
        original, candidate = fig.axes
        assert len(original.collections) == 2  # one per track: every note is the original's
        assert len(candidate.collections) == 3  # track 0, track 1's shared notes, track 1's new note
        new = candidate.collections[2]
        assert len(new.get_paths()) == 1 and new.get_edgecolor()[0][:3].tolist() == [0.0, 0.0, 0.0]
    finally:
        plt.close(fig)


def test_without_a_window_the_whole_song_is_drawn():
    score = _band(tracks=1, bars=40)
    fig = draw(score, [])
    try:
        low, high = fig.axes[0].get_xlim()
        assert low <= 0 and high >= 160  # 40 bars of 4 beats
        assert fig.axes[0].get_ylim()[1] >= 120
    finally:
        plt.close(fig)


def test_a_nine_track_band_song_renders_to_a_png(tmp_path):
    score = _band()
    path = render(score, [("1", score), ("2", score)], tmp_path / "roll.png", (8 * BAR, 12 * BAR), "t",
                  (4 * BAR, 16 * BAR))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
