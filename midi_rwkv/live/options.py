"""How the live engine writes: the settings fixed for a session, and the controls a player may change between bars.

:class:`LiveOptions` are chosen once (the command line's options are generated from its fields);
:class:`LiveControls` (tempo, metre, the structure setting, and per part its density, polyphony and register) change
while playing: a change takes effect at the next bar the engine writes (see :mod:`midi_rwkv.live.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from midi_rwkv.inference.form import DEFAULT_STRUCTURE, STRUCTURE_SETTINGS
from midi_rwkv.inference.options import InfillOptions
from midi_rwkv.settings import check_seed, like, require, setting
from midi_rwkv.tokenizer.controls import POLYPHONY_MAX, POLYPHONY_MIN

LIVE_RANKINGS = ("none", "likelihood")  # infill's words (InfillOptions.rank); 'controls' needs every candidate whole
MIN_QPM, MAX_QPM = 20.0, 400.0


@dataclass(frozen=True)
class LiveOptions:
    """The settings of one live session."""

    candidates: int = setting(1, "candidates per part and bar, forked from one state (the first is kept unless "
                              "--rank likelihood)")
    rank: str = setting("none", "which candidate plays: 'none' the first sampled (as infill's --rank none), or "
                        "'likelihood' (the model's mean log-probability per sampled token)", choices=LIVE_RANKINGS)
    context: int = setting(8, "bars before the written bar that its prompt shows, at most")
    hop: int = setting(4, "the prompt's first bar moves forward this many bars at a time, so consecutive bars' "
                       "prompts share their start (1: a sliding window)")
    prime: bool = setting(True, "keep the state at each track's end (and after the bars already played) so later "
                          "prompts that share it continue from it")
    max_tokens: int = setting(512, "tokens one part may write per bar (a bar is about 10-160)")
    # the register, density and seed settings are infill's (InfillOptions), worded for a live part
    register: str = like(InfillOptions, "register", "keep: each part plays in its register (the track's own range, a "
                         "new part its instrument's); free: any pitch")
    strict_density: bool = like(InfillOptions, "strict_density", "a written bar holds at most the notes its density "
                                "control asks for")
    seed: int | None = like(InfillOptions, "seed", "random seed, for a repeatable take")

    def __post_init__(self):
        require(1 <= self.candidates <= 16, "'candidates' must be 1 to 16")
        require(self.context >= 1, "'context' must be 1 bar or more")
        require(1 <= self.hop <= self.context, "'hop' must be 1 to 'context' bars")
        require(self.max_tokens >= 8, "'max_tokens' must be 8 or more")
        check_seed(self.seed)


@dataclass(frozen=True)
class PartControls:
    """What one part is asked to play; None: what it played lately (a new part: a plain part's defaults)."""

    density: int | None = None  # notes per bar
    polyphony: tuple[int, int] | None = None  # fewest and most notes starting together
    register: tuple[int, int] | None = None  # lowest and highest pitch
    mute: bool = False  # write nothing (the part rests) until unmuted

    def __post_init__(self):
        require(self.density is None or 0 <= self.density <= 64, "'density' must be 0 to 64 notes per bar")
        if self.polyphony is not None:
            low, high = self.polyphony
            require(POLYPHONY_MIN <= low <= high <= POLYPHONY_MAX,
                    f"'polyphony' must be two numbers with {POLYPHONY_MIN} <= low <= high <= {POLYPHONY_MAX}")
        if self.register is not None:
            low, high = self.register
            require(0 <= low <= high <= 127, "'register' must be two pitches with 0 <= low <= high <= 127")


@dataclass(frozen=True)
class LiveControls:
    """The controls a player changes between bars."""

    qpm: float = 120.0  # quarter notes per minute
    metre: tuple[int, int] = (4, 4)
    structure: str = DEFAULT_STRUCTURE
    parts: dict[int, PartControls] = field(default_factory=dict)  # track number -> its controls

    def __post_init__(self):
        require(MIN_QPM <= self.qpm <= MAX_QPM, f"'tempo' must be {MIN_QPM:g} to {MAX_QPM:g} quarter notes a minute")
        num, den = self.metre
        require(1 <= num <= 32 and den in (1, 2, 4, 8, 16, 32), f"'metre' {num}/{den}: not a time signature")
        require(self.structure in STRUCTURE_SETTINGS,
                f"'structure' must be one of {', '.join(STRUCTURE_SETTINGS)}, got {self.structure!r}")

    def part(self, track: int) -> PartControls:
        return self.parts.get(track, PartControls())

    def with_part(self, track: int, **changes) -> LiveControls:
        """These controls with part ``track``'s changed (``density=None`` gives it back to the model)."""
        return replace(self, parts={**self.parts, track: replace(self.part(track), **changes)})
