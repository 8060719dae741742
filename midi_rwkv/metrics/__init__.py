"""Metrics, statistics and the evaluation pipeline (docs/original-release.md#metrics, with the original's
bugs fixed).
"""

from midi_rwkv.metrics.adherence import adherence, density_deltas
from midi_rwkv.metrics.music import (
    content_preservation,
    groove_consistency,
    groove_similarity,
    music_metrics,
    note_density_difference,
    onset_f1,
    pitch_class_entropy,
    pitch_class_entropy_difference,
    pitch_range_difference,
    polyphony_difference,
    repeated_onsets,
)
from midi_rwkv.metrics.region import Region
from midi_rwkv.metrics.stats import bootstrap_ci, cohens_d, compare, holm, paired_test

__all__ = [
    "Region",
    "adherence",
    "bootstrap_ci",
    "cohens_d",
    "compare",
    "content_preservation",
    "density_deltas",
    "groove_consistency",
    "groove_similarity",
    "holm",
    "music_metrics",
    "note_density_difference",
    "onset_f1",
    "paired_test",
    "pitch_class_entropy",
    "pitch_class_entropy_difference",
    "pitch_range_difference",
    "polyphony_difference",
    "repeated_onsets",
]
