"""The song's form in a bar infill: which source window to follow, and how strongly, bar by bar.

The structure (:class:`midi_rwkv.structure.SongStructure`, computed once per song) ranks the windows whose other
tracks match the span's. The best one is the source. Each written bar k gets a weight for the copy distribution of
:class:`~midi_rwkv.inference.follow.FollowSource`::

    w_k = weight * ramp(match_k) * agree_k

``match_k``: how well the other tracks of source bar k match those of the span's bar k; ``ramp`` rises from 0 at
:data:`MATCH_FLOOR` to 1 at the repeat threshold, so a near-exact repeat is followed fully and a loose match only
nudges the model. ``agree_k`` (:func:`agreement`): 1 when the bar's requested controls are those of the source bar
(density within one note, same polyphony, at most one of the five note values different), else 0: a bar asked to
differ from its source follows its controls, not the song. A bar written token for token from its source keeps the
source bar's own notes (``FollowSettings.source_timing``). The default setting and these constants were chosen by
the rules in docs/structure.md, fixed before the runs that decided them.

Settings (:data:`STRUCTURE_SETTINGS`): ``follow`` (the first candidate follows the form with the full weight, the
others with a weight scaled by :data:`VARY_FACTOR`, so that at most one candidate is the repeat itself), ``vary``
(every candidate with the scaled weight: ideas that lean on the form without repeating it), ``context`` (no copy
distribution; the prompt's context is widened to reach the source window, so the model reads the repeat itself),
and ``off``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midi_rwkv.structure import REPEAT_THRESHOLD
from midi_rwkv.tokenizer import Piece
from midi_rwkv.tokenizer.controls import BarControls

STRUCTURE_SETTINGS = ("follow", "vary", "context", "off")
DEFAULT_STRUCTURE = "follow"  # the one default of the CLI, the studio, the evaluation and the API (docs/structure.md)
FOLLOW_WEIGHT = 1.0  # w of the first candidate under ``follow``
VARY_FACTOR = 0.5  # the other candidates' (and ``vary``'s) share of it
MATCH_FLOOR = 0.0  # other tracks matching at or below this give a bar no copy at all (docs/structure.md, rule 2)
# a bar follows its source only where at most this many of the five note-value flags differ, whatever the match
# (docs/structure.md, rule 7: matches are at most 1, so 1.01 gates every bar)
NOTE_VALUES_BELOW, NOTE_VALUE_SLACK = 1.01, 1


@dataclass(frozen=True)
class FollowSettings:
    """How strongly a bar infill follows the form (``follow`` and ``vary``)."""

    weight: float = FOLLOW_WEIGHT  # w of a bar whose other tracks match the source's at the repeat threshold
    floor: float = MATCH_FLOOR  # other tracks matching at or below this give a bar no copy
    source_timing: bool = True  # a bar written token for token from its source keeps the source's own notes
    # below this match, a bar's requested note values must agree with the source bar's (0: never; 1.01: always)
    durations_below: float = NOTE_VALUES_BELOW
    duration_slack: int = NOTE_VALUE_SLACK  # of the five note-value flags, how many may differ and still agree
    duration_keep: float = 0.0  # the share of its weight a bar keeps when its note values disagree
    # whole and new tracks follow their own earlier bars where the song repeats; off (docs/structure.md, rule 3: it
    # raised the track control error of POP909's whole tracks by 1.2)
    tracks: bool = False

    def __post_init__(self):
        if not 0 <= self.weight <= 1 or not 0 <= self.floor < 0.9:
            raise ValueError(f"follow weight must be in [0, 1] and floor in [0, 0.9): {self}")
        if not 0 <= self.duration_slack <= 5 or not 0 <= self.duration_keep <= 1:
            raise ValueError(f"duration slack must be in 0..5 and duration keep in [0, 1]: {self}")


@dataclass(frozen=True)
class FormPlan:
    """What a bar infill follows: the source window (real bars), per written bar its body in model ids and its
    full weight, and one line for people."""

    source: int | None  # first real bar of the source window
    match: float  # the window's match (0 without a source)
    bodies: tuple[tuple[int, ...] | None, ...]
    weights: tuple[float, ...]
    note: str

    def weights_for(self, candidate: int, setting: str) -> list[float]:
        """Candidate ``candidate``'s weights under ``setting`` (:func:`candidate_weights`)."""
        return candidate_weights(self.weights, candidate, setting)

    @property
    def active(self) -> bool:
        return any(w > 0 for w in self.weights)


def candidate_weights(weights, candidate: int, setting: str) -> list[float]:
    """Candidate ``candidate``'s copy weights under ``setting``: full for the first under ``follow``, scaled by
    :data:`VARY_FACTOR` for the rest and for every candidate under ``vary`` (at most one candidate is the repeat)."""
    scale = 1.0 if setting == "follow" and candidate == 0 else VARY_FACTOR
    return [w * scale for w in weights]


def controls_agree(requested: BarControls, source: BarControls) -> bool:
    """Does a bar asked for ``requested`` allow the source bar's content: density within one note, and the same
    polyphony where both name one."""
    if abs(requested.density - source.density) > 1:
        return False
    return requested.polyphony is None or source.polyphony is None or requested.polyphony == source.polyphony


def note_values_agree(requested: BarControls, source: BarControls, slack: int = 0) -> bool:
    """Do the bar's requested note values (the five duration flags) allow the source bar's: at most ``slack`` flags
    differ, where both name them."""
    if None in (requested.durations, source.durations):
        return True
    return sum(a != b for a, b in zip(requested.durations, source.durations)) <= slack


def agreement(requested: BarControls, source: BarControls, match: float,
              settings: FollowSettings = FollowSettings()) -> float:
    """How much of its weight a bar asked for ``requested`` keeps when its source bar has ``source`` and the other
    tracks match ``match`` there: 0 where density or polyphony disagree (the controls win), ``duration_keep`` where
    only the note values do (checked below a match of ``durations_below``), else 1."""
    if not controls_agree(requested, source):
        return 0.0
    if match < settings.durations_below and not note_values_agree(requested, source, settings.duration_slack):
        return settings.duration_keep
    return 1.0


def ramp(match: np.ndarray, threshold: float, floor: float = MATCH_FLOOR) -> np.ndarray:
    """0 at or below ``floor``, 1 at or above ``threshold``, linear between."""
    return np.clip((np.asarray(match, dtype=float) - floor) / (threshold - floor), 0.0, 1.0)


def no_plan(n: int, note: str) -> FormPlan:
    return FormPlan(None, 0.0, (None,) * n, (0.0,) * n, note)


def plan_form(piece: Piece, enc, structure, track: int, bars: tuple[int, int], requested: list[BarControls],
              gate: bool = True, settings: FollowSettings = FollowSettings()) -> FormPlan:
    """The source window of real bars ``bars`` of ``track`` and the weight of each written bar.

    ``requested``: the controls of the span's tokenizer bars, as the prompt asks for them; ``gate``: whether they
    gate the copy (free infilling asks for none); ``enc``: the piece's encoding."""
    n_real = bars[1] - bars[0]
    sources = structure.sources(track, bars, k=1)
    if not sources or sources[0].match <= settings.floor:
        why = "no window elsewhere in the song" if not sources else "no window whose other tracks match"
        return no_plan(len(requested), f"form: {why}, so the model alone")
    best = sources[0]
    t = piece.track_index(track)
    span = piece.token_span(*bars)
    source_span = piece.token_span(best.start, best.start + n_real)
    n = span[1] - span[0]
    if source_span[1] - source_span[0] != n or n != len(requested):
        return no_plan(len(requested), "form: the source window's bars do not line up with the span's, so the "
                                       "model alone")
    per_bar = structure.bar_match(track, bars, best.start)
    if len(per_bar) != n:  # tokenizer bars split some real bar: the window's match for every bar
        per_bar = np.full(n, best.match)
    source_controls = enc.bar_controls(t, source_span)
    agree = np.array([agreement(r, s, m, settings) if gate else 1.0
                      for r, s, m in zip(requested, source_controls, per_bar)])
    weights = settings.weight * ramp(per_bar, REPEAT_THRESHOLD, settings.floor) * agree
    bodies = tuple(tuple(enc.bars[t][source_span[0] + k][1]) for k in range(n))
    where = f"bars {best.start + 1}-{best.start + n_real}"
    kind = "a repeat" if best.match >= REPEAT_THRESHOLD else "the closest match"
    followed = int((weights > 0).sum())
    how = "follow them" if best.match >= REPEAT_THRESHOLD else f"lean on them (weight up to {weights.max():.2f})"
    note = (f"form: {where} are {kind} (other tracks match {best.match:.2f}); {followed} of {n} bars {how}"
            if followed else f"form: {where} match {best.match:.2f}, but no bar's controls agree with them, so the "
            "model alone")
    return FormPlan(best.start, best.match, bodies, tuple(float(w) for w in weights), note)


def context_to_reach(bars: tuple[int, int], source: int | None, context_bars: int | None) -> int | None:
    """Bars of context on each side that show the model the whole source window (``context`` setting)."""
    if source is None or context_bars is None:
        return context_bars
    n = bars[1] - bars[0]
    reach = source + n - bars[1] if source >= bars[1] else bars[0] - source
    return max(context_bars, reach)
