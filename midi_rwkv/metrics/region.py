"""The span a metric looks at: one track, a run of real bars, in the ticks of the scores compared.

Generated files are the original score with one span replaced (``tokenizer.merge``), so the
generated and the original share resolution, tempo map and bar lines: every metric compares them
tick for tick, with no unit conversion (the original release mixed tpq 24 and tpq 480,
docs/original-release.md#onset-f1).
"""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Score

from midi_rwkv.structure.features import Notes, track_notes  # re-exported: computed below the metrics
from midi_rwkv.tokenizer.metre import Bar

__all__ = ["Notes", "Region", "span_notes", "track_notes"]


@dataclass(frozen=True)
class Region:
    track: int  # track index in both scores
    bars: tuple[Bar, ...]  # the infilled real bars, consecutive
    tpq: int

    @property
    def start(self) -> int:
        return self.bars[0].start

    @property
    def end(self) -> int:
        return self.bars[-1].end


def span_notes(score: Score, region: Region) -> Notes:
    """Notes of the region's track that start inside the region."""
    return track_notes(score, region.track).onset_in(region.start, region.end)
