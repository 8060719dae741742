"""Control adherence: did each generated bar get the note density, polyphony and durations asked for?

Requested controls are per tokenizer bar (what the model was given); realised controls are measured
the same way on the merged result (``InfillTokenizer.realised_controls``), so a bar that honours its
controls exactly has zero error.
"""

from __future__ import annotations

import numpy as np

from midi_rwkv.tokenizer import BarControls

SILENT_ASKED = 4  # a bar asked for this many notes or more should not come out silent


def adherence(requested: list[BarControls], realised: list[BarControls]) -> dict[str, float]:
    """Mean per-bar errors between what was asked and what came out.

    * ``density_error``: |realised - requested| notes per bar (18 means "18 or more");
    * ``polyphony_error``: |min error| + |max error| over bars where both have notes;
    * ``duration_accuracy``: share of the five duration flags that agree (1 = all honoured);
    * ``silent_bars``: share of the bars asked for 4 or more notes that came out without any (the failure a
      composer notices first: a drum fill asked for 16 hits that leaves the bar empty).
    NaN where no bar carries that control (drums: polyphony and durations; ``silent_bars``: no bar asked for 4).
    """
    density = [abs(a.density - b.density) for a, b in zip(requested, realised)]
    polyphony = [abs(a.polyphony[0] - b.polyphony[0]) + abs(a.polyphony[1] - b.polyphony[1])
                 for a, b in zip(requested, realised) if a.polyphony and b.polyphony]
    flags = [x == y for a, b in zip(requested, realised) if a.durations and b.durations
             for x, y in zip(a.durations, b.durations)]
    silent = [b.density == 0 for a, b in zip(requested, realised) if a.density >= SILENT_ASKED]
    mean = lambda values: float(np.mean(values)) if values else float("nan")  # noqa: E731
    return {"density_error": mean(density), "polyphony_error": mean(polyphony), "duration_accuracy": mean(flags),
            "silent_bars": mean(silent)}


def density_deltas(requested: list[BarControls], realised: list[BarControls]) -> list[int]:
    """Realised minus requested note density, per bar (the paper's Figures 3-6 plot these)."""
    return [b.density - a.density for a, b in zip(requested, realised)]
