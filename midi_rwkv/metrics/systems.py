"""What produces an infill in an evaluation: a model setting, or one of the non-model references.

A model system is a checkpoint (optionally with a tuned state or a LoRA), sampling settings, and
whether the bars get their controls (those of the original bars, as in the paper) or none (free).
Every report also has references on the same prompts:
  * ``original``: the original bars themselves, the ceiling of every similarity metric;
  * ``copy``: the N bars just before the span copied into it (the N after it when the piece
    starts too early), a heuristic that any useful model should beat (whole tracks: ``other-track``);
  * ``structure-copy``: the N bars of the target track from the window elsewhere in the song whose other tracks
    best match the span's (:meth:`midi_rwkv.structure.SongStructure.sources`): songs repeat, so this is the
    baseline to beat;
  * ``silence``: nothing at all in the span (or the whole track), the floor. A metric on which silence
    scores well rewards empty bars: groove similarity counts the onsets that a generation and the
    original do not share, so the fewer notes the better wherever the onsets are hard to guess.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields

import numpy as np
from symusic import Score

from midi_rwkv.errors import MidiRwkvError
from midi_rwkv.inference.form import DEFAULT_STRUCTURE, FOLLOW_WEIGHT, MATCH_FLOOR, STRUCTURE_SETTINGS, FollowSettings
from midi_rwkv.inference.ggml import ENGINES
from midi_rwkv.inference.sampler import SamplerConfig, default_sampler
from midi_rwkv.io import file_sha256
from midi_rwkv.structure import SongStructure
from midi_rwkv.structure.copying import copy_bars
from midi_rwkv.tokenizer import Piece
from midi_rwkv.tokenizer.sequences import LAYOUTS

REFERENCES = ("original", "copy", "structure-copy", "silence")  # bar infill
TRACK_REFERENCES = ("original", "other-track", "silence")  # whole-track infill


@dataclass(frozen=True)
class System:
    name: str
    model: str | None = None  # None for the references
    tokenizer: str | None = None
    state: str | None = None
    lora: str | None = None
    free: bool = False
    engine: str = "torch"  # or ggml / ggml-f32 (llama.cpp)
    context: int | str | None = None  # bars of context on each side, or "all"; None: the evaluation's --context
    context_tokens: int | None = None  # at most this many prompt tokens (with context=all: a context-length sweep)
    n: int = 1  # candidates drawn per prompt; the best one by `rank` is kept (best of n)
    rank: str = "likelihood"  # likelihood (the model's mean log-prob per token) | controls (control error)
    register: str = "keep"  # keep: only pitches in the register the track plays around the span | free
    strict_density: bool = True  # each bar holds at most the notes its density control asks for (0: it may overshoot)
    layout: str | None = None  # the sequence layout of the prompts; None: the model's own (tokenizer.sequences.LAYOUTS)
    sampler: SamplerConfig | None = None  # None: each fill kind's default (inference.sampler.TRACK_SAMPLER for tracks)
    structure: str = DEFAULT_STRUCTURE  # follow the song's form: follow | vary | context | off (inference.form)
    structure_weight: float = FOLLOW_WEIGHT  # how it follows (inference.form.FollowSettings), for measuring:
    structure_floor: float = MATCH_FLOOR  # the copy distribution's full weight, the match below which it is off,
    source_timing: bool = True  # whether bars followed token for token keep their source's notes,
    structure_durations: float = 0.0  # below which match note values gate the copy too,
    structure_tracks: bool = False  # and whether whole and new tracks follow their own repeats

    @property
    def follow(self) -> FollowSettings:
        return FollowSettings(self.structure_weight, self.structure_floor, self.source_timing, self.structure_durations,
                              self.structure_tracks)

    @property
    def is_reference(self) -> bool:
        return self.model is None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sampler"}
        return out | {"sampler": vars(self.sampler) if self.sampler else None}

    def identity(self, mode: str) -> dict:
        """What decides this system's generations in an evaluation of ``mode`` (bars | track): its settings, the
        sampling it gets (a default resolved), and the sha256 of each file it loads. Stored with every generation,
        so that a re-run can tell generations made by something else under the same name."""
        if self.is_reference:  # made by no model: its name says it all (a model setting's default is not its own)
            return {"name": self.name}
        out = self.to_dict()
        out["sampler"] = vars(self.sampler or default_sampler(mode))
        files = {key: getattr(self, key) for key in ("model", "tokenizer", "state", "lora")}
        return out | {"sha256": {key: file_sha256(path)[:12] for key, path in files.items() if path}}


_SAMPLER_KEYS = typing.get_type_hints(SamplerConfig)  # temperature: float, top_k: int, ...


def parse_system(text: str, default_model: str) -> System:
    """``NAME[:key=value,...]``.

    Keys: model tokenizer state lora free strict_density engine context context_tokens n rank register layout
    structure (follow, vary, context, off; 1 = follow, 0 = off) structure_weight structure_floor source_timing
    structure_durations structure_tracks temperature top_k top_p epsilon repetition_penalty.
    """
    name, _, rest = text.partition(":")
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise MidiRwkvError(f"system '{text}': the name must be letters, digits, - or _")
    if name in REFERENCES or name in TRACK_REFERENCES:
        raise MidiRwkvError(f"system name '{name}' is reserved for a reference row")
    options: dict = {"model": default_model}
    sampler: dict = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise MidiRwkvError(f"system '{text}': '{item}' is not key=value")
        if key in _SAMPLER_KEYS:
            try:
                sampler[key] = _SAMPLER_KEYS[key](value)
            except ValueError:
                raise MidiRwkvError(f"system '{text}': {key} needs a number, got '{value}'") from None
        elif key in ("free", "strict_density", "source_timing", "structure_tracks"):
            options[key] = value.lower() in ("1", "true", "yes")
        elif key in ("model", "tokenizer", "state", "lora"):
            options[key] = value
        elif key == "n":
            if not value.isdigit() or not 1 <= int(value) <= 16:
                raise MidiRwkvError(f"system '{text}': n must be a number of candidates from 1 to 16")
            options["n"] = int(value)
        elif key == "register":
            if value not in ("keep", "free"):
                raise MidiRwkvError(f"system '{text}': register must be keep or free")
            options["register"] = value
        elif key == "layout":
            if value not in LAYOUTS:
                raise MidiRwkvError(f"system '{text}': layout must be one of {', '.join(LAYOUTS)}")
            options["layout"] = value
        elif key == "rank":
            if value not in ("likelihood", "controls"):
                raise MidiRwkvError(f"system '{text}': rank must be likelihood or controls")
            options["rank"] = value
        elif key in ("context", "context_tokens"):
            if not (value.isdigit() or (key == "context" and value == "all")):
                unit = "bars, or all" if key == "context" else "tokens"
                raise MidiRwkvError(f"system '{text}': {key} needs a number of {unit}")
            options[key] = value if value == "all" else int(value)
        elif key == "structure":
            value = {"1": "follow", "0": "off"}.get(value, value)
            if value not in STRUCTURE_SETTINGS:
                choices = ", ".join(STRUCTURE_SETTINGS)
                raise MidiRwkvError(f"system '{text}': structure must be one of {choices}, 0 or 1")
            options[key] = value
        elif key in ("structure_weight", "structure_floor", "structure_durations"):
            try:
                options[key] = float(value)
            except ValueError:
                raise MidiRwkvError(f"system '{text}': {key} needs a number, got '{value}'") from None
        elif key == "engine":
            if value not in ENGINES:
                raise MidiRwkvError(f"system '{text}': engine must be one of {', '.join(ENGINES)}")
            options[key] = value
        else:
            raise MidiRwkvError(f"system '{text}': unknown key '{key}'")
    try:
        system = System(name, sampler=SamplerConfig(**sampler) if sampler else None, **options)
        system.follow  # noqa: B018 (validates the follow settings)
        return system
    except (ValueError, MidiRwkvError) as exc:
        raise MidiRwkvError(f"system '{text}': {exc}") from None


def reference_score(name: str, piece: Piece, track: int, bars: tuple[int, int]) -> Score:
    """The ``original``, ``copy``, ``silence`` or ``other-track`` infill of real bars [start, end) of ``track``
    (original ticks)."""
    score = piece.original.copy()
    if name == "original":
        return score
    if name == "other-track":
        return other_track_score(piece, track)
    start, end = bars
    n = end - start
    notes = score.tracks[track].notes
    span_start, span_end = piece.bars[start].start, piece.bars[end - 1].end
    if name == "silence":
        kept = [note.copy() for note in notes if not span_start <= note.time < span_end]
        notes.clear()
        notes.extend(kept)
        return score
    if name == "structure-copy":
        source = structure_source(piece, track, bars)
    else:
        source = start - n if start - n >= 0 else end
        if source + n > piece.num_bars:
            raise MidiRwkvError(f"{piece.name}: no {n} bars next to bars {start + 1}-{end} to copy")
    copy_bars(score, piece.original, track, piece.bars, [(start + i, source + i) for i in range(n)], span_end)
    return score


def structure_source(piece: Piece, track: int, bars: tuple[int, int]) -> int:
    """The first real bar of the window whose other tracks best match the span's (the ``structure-copy`` source)."""
    sources = SongStructure.of_piece(piece).sources(track, bars, k=1)
    if not sources:
        raise MidiRwkvError(f"{piece.name}: no window elsewhere in the song with other tracks to match bars "
                            f"{bars[0] + 1}-{bars[1]} against")
    return sources[0].start


def other_track_score(piece: Piece, track: int) -> Score:
    """The whole-track reference: of the piece's other pitched tracks, the one whose content best matches the
    original track (content preservation), copied in its place and moved by whole octaves to the original's
    register (its median pitch). Drums copy the closest other drum track, unmoved. An oracle-assisted heuristic,
    so a strong row: a model that writes a whole track should approach it."""
    from midi_rwkv.metrics.music import content_preservation
    from midi_rwkv.metrics.region import Region

    original = piece.original
    target = original.tracks[track]
    region = Region(track, tuple(piece.bars), original.ticks_per_quarter)
    best, best_cp = None, -1.0
    for i, other in enumerate(original.tracks):
        if i == track or other.is_drum != target.is_drum or not other.notes:
            continue
        candidate = original.copy()
        notes = [n.copy() for n in other.notes]
        if not target.is_drum and target.notes:
            shift = 12 * round((np.median([n.pitch for n in target.notes]) - np.median([n.pitch for n in notes])) / 12)
            for n in notes:
                n.pitch = int(min(127, max(0, n.pitch + shift)))
        candidate.tracks[track].notes.clear()
        candidate.tracks[track].notes.extend(notes)
        cp = content_preservation(candidate, original, region)
        if cp > best_cp:
            best, best_cp = candidate, cp
    if best is None:
        raise MidiRwkvError(f"{piece.name}: no other {'drum' if target.is_drum else 'pitched'} track to copy")
    return best
