"""The bars a live prompt shows: a window of the take's recent bars, as the sequence builders read a piece.

:class:`LiveWindow` implements the tokenizer's :class:`~midi_rwkv.tokenizer.contract.EncodedBars` contract over bars
that were each encoded once (:mod:`midi_rwkv.live.encoding`), so a live prompt is built by the very function that
builds training and infill prompts (``build_bar_infill``), in the model's own layout. Its bars run from the window's
first bar through the bar being written; bars nobody has played or written yet are empty.

Which bar comes first (:func:`window_start`): the window is anchored, not sliding. It grows by one bar per bar until
it shows ``context`` bars before the written one, then its first bar jumps ``hop`` bars forward. While the anchor
stays, consecutive bars' prompts begin with the same tokens (the tracks before the first that changes, and that one's
bars up to its last final bar), which the generator's prompt cache then reads once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from midi_rwkv.errors import BarRangeError, TrackIndexError
from midi_rwkv.live.encoding import EncodedBar
from midi_rwkv.tokenizer.contract import BarIds
from midi_rwkv.tokenizer.controls import BarControls


def window_start(anchor: int | None, target: int, context: int, hop: int) -> int:
    """The first bar of the window that writes bar ``target``, given the last one (``anchor``; None at first).

    The window shows between ``context - hop + 1`` and ``context`` bars before the target (fewer at the song's start).
    """
    if anchor is None or anchor > target:
        return max(0, target - context)
    while target - anchor > context:
        anchor += hop
    return anchor


@dataclass
class WindowGrid:
    """The window's bars and tracks, as the builders address them (the contract's ``PieceBars``)."""

    name: str
    first_token_bar: list[int]
    track_ids: list[int]

    @property
    def num_bars(self) -> int:
        return len(self.first_token_bar) - 1

    def track_index(self, original_track: int) -> int:
        if original_track not in self.track_ids:
            raise TrackIndexError(f"{self.name}: track {original_track} is not in the window")
        return self.track_ids.index(original_track)

    def token_span(self, start: int, end: int) -> tuple[int, int]:
        if not 0 <= start < end <= self.num_bars:
            raise BarRangeError(f"{self.name}: bars {start}-{end} are outside the window of {self.num_bars}")
        return self.first_token_bar[start], self.first_token_bar[end]


@dataclass(frozen=True)
class TrackFacts:
    program: int  # -1 for drums
    is_drum: bool


@dataclass
class LiveWindow:
    """Tracks (in the order the prompt writes them) by real bars of the window, each an :class:`EncodedBar`."""

    grid: WindowGrid
    tracks: list[TrackFacts]
    rows: list[list[EncodedBar]]  # [track][real bar]
    bars: list[list[BarIds]] = field(init=False)  # [track][tokenizer bar]
    _notes: list[list[int]] = field(init=False)

    def __post_init__(self):
        self.bars = [[b for bar in row for b in bar.bars] for row in self.rows]
        self._notes = [[0] for _ in self.rows]
        for counts, row in zip(self._notes, self.rows):
            for bar in row:
                for n in bar.notes:
                    counts.append(counts[-1] + n)

    @classmethod
    def build(cls, name: str, tracks: list[tuple[int, TrackFacts, list[EncodedBar]]]) -> LiveWindow:
        """From (track number, facts, its bars) per track; every track has the same bars' metres."""
        first = [0]
        for bar in tracks[0][2]:
            first.append(first[-1] + len(bar.bars))
        grid = WindowGrid(name, first, [t for t, _, _ in tracks])
        return cls(grid, [f for _, f, _ in tracks], [row for _, _, row in tracks])

    @property
    def piece(self) -> WindowGrid:
        return self.grid

    def cost(self, track: int, bar: int) -> int:
        header, body = self.bars[track][bar]
        return len(header) + len(body)

    def bar_costs(self, tracks=None) -> list[int]:
        tracks = range(len(self.bars)) if tracks is None else tracks
        return [sum(self.cost(t, b) for t in tracks) for b in range(self.grid.first_token_bar[-1])]

    def has_notes(self, track: int, start: int, end: int) -> bool:
        return self._notes[track][end] > self._notes[track][start]

    def bar_controls(self, track: int, span: tuple[int, int]) -> list[BarControls]:
        controls = [c for bar in self.rows[track] for c in bar.controls]
        return controls[span[0]:span[1]]

    def track_controls(self, track: int, window: tuple[int, int]):
        raise NotImplementedError("a live window writes bars, not whole tracks")

    def emitted(self, target: int, layout: str) -> list[int]:
        """The tracks (window indices) a bar-infill prompt for ``target`` writes, in order: those with notes in the
        window and the target, the target last in the target-last layout (as ``build_bar_infill`` chooses them)."""
        end = self.grid.first_token_bar[-1]
        tracks = [i for i in range(len(self.rows)) if i == target or self.has_notes(i, 0, end)]
        if layout == "target-last":
            tracks = [i for i in tracks if i != target] + [target]
        return tracks

    def block_length(self, track: int) -> int:
        """Tokens of a track written whole: Track_Start Program <bars> Track_End."""
        return 3 + sum(self.cost(track, b) for b in range(self.grid.first_token_bar[-1]))

    def prefix_length(self, track: int, bars: int) -> int:
        """Tokens of the start of a track's block through its first ``bars`` real bars."""
        return 2 + sum(self.cost(track, b) for b in range(self.grid.first_token_bar[bars]))
