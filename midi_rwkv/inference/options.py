"""How an infill is written: every setting of one request, each with its one default.

The three front ends build the same :class:`InfillOptions` from its fields: ``midi-rwkv infill``'s options
(``commands.options.add_settings``), the studio's JSON fields and the evaluation's system keys
(``settings.settings_from_mapping``). So a number measured with the evaluation is what the command line and the
studio give with the same settings. Sampling has its own settings (:class:`~midi_rwkv.inference.sampler.SamplerConfig`);
what to write and its controls are the fills (:mod:`midi_rwkv.inference.requests`).
"""

from __future__ import annotations

from dataclasses import dataclass

from midi_rwkv.inference.form import DEFAULT_STRUCTURE, STRUCTURE_SETTINGS
from midi_rwkv.inference.ggml import ENGINES
from midi_rwkv.settings import ConfigError, check_seed, require, setting

RANKINGS = ("none", "controls", "likelihood")
MAX_CANDIDATES = 16
BAR_TOKENS = 2000  # a bar fill's token budget per candidate, unless max_tokens says otherwise
TRACK_TOKENS_PER_BAR = 160  # a whole or new track's budget: BAR_TOKENS + this per bar (at most ~160 tokens a bar)


def parse_context(text: str | int) -> int | str:
    """``16`` (or the text "16") -> 16 bars of context on each side; ``all`` -> "all" (the whole song)."""
    if text == "all" or (isinstance(text, int) and not isinstance(text, bool)):
        return text
    if not isinstance(text, str) or not text.isdigit():
        raise ConfigError(f"context {text!r}: expected a number of bars or 'all'")
    return int(text)


@dataclass(frozen=True)
class InfillOptions:
    """Every setting of an infill request but what to write, its controls and its sampling."""

    n: int = setting(4, "candidates to write", flag="-n", metavar="N")
    rank: str = setting("none", "order the candidates (files numbered best first): 'controls' by how well they "
                        "follow the controls, 'likelihood' by the model's mean log-probability per sampled token, "
                        "'none' in the order they were sampled; --rank alone: controls", choices=RANKINGS,
                        const="controls")
    context: int | str = setting(16, "bars of context on each side of the bars written, or 'all' for the whole song "
                                  "(read in chunks at constant memory)", parse=parse_context, metavar="BARS|all")
    context_tokens: int | None = setting(None, "at most this many prompt tokens in all, the context widened evenly on "
                                         "both sides (default: 4 x the model's training length with a bar context)")
    max_tokens: int | None = setting(None, f"stop a fill after this many tokens (default: {BAR_TOKENS} for bars, "
                                     f"{BAR_TOKENS} + {TRACK_TOKENS_PER_BAR} per bar for a whole or new track)")
    seed: int | None = setting(None, "random seed, for repeatable candidates")
    free: bool = setting(False, "give the model no bar controls at all: it chooses density, polyphony and durations "
                         "(bars of a track only)")
    register: str = setting("keep", "keep: only pitches in the register the track plays around what it writes, one "
                            "semitone of slack (a new track: its instrument's range); free: any pitch",
                            choices=("keep", "free"))
    strict_density: bool = setting(True, "each new bar holds at most the notes its density control asks for (the "
                                   "model may still write fewer)")
    structure: str = setting(DEFAULT_STRUCTURE, "follow the song's form in bar infills: 'follow' copies, bar by bar "
                             "and weighted by how well they match, from the window whose other tracks best match the "
                             "span's (the first candidate fully, the others loosely, never where a bar's controls "
                             "differ from that window's); 'vary' leans on it loosely in every candidate; 'context' "
                             "widens the prompt to show the model that window; 'off'. See 'midi-rwkv structure FILE'",
                             choices=STRUCTURE_SETTINGS)
    engine: str = setting("auto", "auto: GGML (llama.cpp) where llama-cpp-python is installed and runs the model, "
                          "else PyTorch; ggml: f16 matrices; ggml-f32: matches PyTorch to float precision; torch",
                          choices=("auto", *ENGINES))
    threads: int | None = setting(None, "at most this many threads, fewer while other programs keep CPUs busy "
                                  "(default: 1 on the GGML engine, PyTorch's default on the PyTorch engine; see "
                                  "bench/infill.py for when a second one helps)")

    def __post_init__(self):
        require(1 <= self.n <= MAX_CANDIDATES, f"'n' must be a number of candidates from 1 to {MAX_CANDIDATES}")
        require(self.context == "all" or (isinstance(self.context, int) and self.context >= 0),
                "'context' must be 0 or more bars, or 'all'")
        for name in ("context_tokens", "max_tokens", "threads"):
            value = getattr(self, name)
            require(value is None or value >= 1, f"'{name}' must be 1 or more")
        check_seed(self.seed)

    @property
    def context_bars(self) -> int | None:
        """Bars of context on each side; None for the whole song."""
        return None if self.context == "all" else self.context

    @property
    def keep_register(self) -> bool:
        return self.register == "keep"

    def bar_budget(self) -> int:
        """Tokens a bar fill may sample per candidate."""
        return token_budget(self.max_tokens)

    def track_budget(self, bars: int) -> int:
        """Tokens a whole or new track of ``bars`` bars may sample per candidate."""
        return token_budget(self.max_tokens, bars)


def token_budget(max_tokens: int | None, track_bars: int = 0) -> int:
    """Tokens a fill may sample per candidate: ``max_tokens`` where given, else :data:`BAR_TOKENS`, plus
    :data:`TRACK_TOKENS_PER_BAR` for each of ``track_bars`` bars of a whole or new track."""
    return max_tokens or BAR_TOKENS + TRACK_TOKENS_PER_BAR * track_bars
