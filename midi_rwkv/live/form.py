"""Following the song's form while playing live: the structure setting for a bar that nobody has played yet.

A bar infill follows the window whose other tracks match the span's (:mod:`midi_rwkv.inference.form`). Live, the
other tracks of the bar being written are not known yet: the player has not played it. So the engine compares what
it knows instead, the *lead-in*: the last :data:`LEAD_IN` bars every track has finished. Where the song played a
matching lead-in before, the part's bar that came the same distance after it is the source: the bar the song's form
suggests. It is followed as a bar infill follows its source (:class:`~midi_rwkv.inference.follow.FollowSource`,
weighted by how well the lead-ins match and only where the bar's controls agree with the source bar's), or under
``context`` the prompt's window is widened to show it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from symusic import Score

from midi_rwkv.inference.form import FOLLOW_WEIGHT, MATCH_FLOOR, agreement, ramp
from midi_rwkv.live.encoding import EncodedBar
from midi_rwkv.structure import REPEAT_THRESHOLD, SongStructure
from midi_rwkv.tokenizer.controls import BarControls
from midi_rwkv.tokenizer.metre import Bar

LEAD_IN = 2  # bars of lead-in compared
HISTORY = 48  # bars of the take the structure is computed over (older ones are not searched)


@dataclass(frozen=True)
class LiveSource:
    """The bar a part's next bar follows, how well its lead-in matched, and the copy weight per tokenizer bar."""

    bar: int
    match: float
    weights: tuple[float, ...]

    @property
    def note(self) -> str:
        return f"form: follows bar {self.bar + 1} (lead-in matches {self.match:.2f})"


class LiveForm:
    """The take's structure over its finished bars, computed once per played bar and shared by every part."""

    def __init__(self, score: Score, bars: list[Bar], known: int):
        """``bars``: the take's bars; ``known``: every track has finished the bars before this one."""
        self.low = max(0, known - HISTORY)
        self.known = known
        self.structure = SongStructure.of(score, bars[self.low:known]) if known - self.low > LEAD_IN else None

    def source(self, track: int, target: int, first_bar: int) -> tuple[int, float] | None:
        """The bar ``track`` played after the best earlier match of the current lead-in, at the target's distance
        from it, and the match; None where nothing matches (or there is too little song yet).

        ``first_bar``: the part's first bar (it has nothing to follow before it)."""
        if self.structure is None or track >= self.structure.num_tracks:
            return None
        span = (self.known - LEAD_IN - self.low, self.known - self.low)
        distance = target - (self.known - 1)
        for found in self.structure.sources(track, span, k=None):
            bar = self.low + found.start + LEAD_IN - 1 + distance
            if first_bar <= bar < target and found.match > MATCH_FLOOR:
                return bar, found.match
        return None


def plan(form: LiveForm | None, track: int, target: int, first_bar: int, requested: list[BarControls],
         source_bar: callable) -> LiveSource | None:
    """What bar ``target`` of ``track`` follows, with weights ``w_k = weight * ramp(match) * agree_k`` per tokenizer
    bar (as :func:`midi_rwkv.inference.form.plan_form` weighs them); None where it follows nothing.

    ``source_bar(bar)``: the part's :class:`EncodedBar` there."""
    found = form.source(track, target, first_bar) if form is not None else None
    if found is None:
        return None
    bar, match = found
    source: EncodedBar = source_bar(bar)
    if len(source.controls) != len(requested):  # other metres: the bars do not line up
        return None
    agree = np.array([agreement(r, s, match) for r, s in zip(requested, source.controls)])
    weights = FOLLOW_WEIGHT * ramp(np.full(len(requested), match), REPEAT_THRESHOLD) * agree
    if not (weights > 0).any():
        return None
    return LiveSource(bar, match, tuple(float(w) for w in weights))
